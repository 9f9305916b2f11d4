"""The episode report folder: strict JSON with the stable core keys, parquet, plots, atomic replacement."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from replay_check import divergence, report
from replay_check.dataset.episode import DatasetMeta
from replay_check.errors import InputError
from replay_check.profiles import Tolerances, available_profiles
from replay_check.sims.base import InitialState, Pose
from replay_check.steps import ReplayResult, ReplaySettings

LENGTH = 60
CAMERA = "observation.images.top"
NAMES = [f"{side}_{j}" for side in ("left", "right") for j in ("j0", "j1", "j2", "j3", "j4", "j5", "gripper")]


def columns(offset_from: int | None = 20) -> dict[str, np.ndarray]:
    """Per-step columns of a replay whose right arm is off by 0.3 rad from `offset_from`."""
    err = np.zeros((LENGTH, 14))
    if offset_from is not None:
        err[offset_from:, 8] = 0.3
    cols = {f"state_err/{n}": err[:, i] for i, n in enumerate(NAMES)}
    cols["state_rms"] = np.sqrt(np.mean(err**2, axis=1))
    profile = available_profiles()["aloha-transfer-cube"]
    for group, (a, b) in profile.state_groups.items():
        cols[f"group/{group}"] = err[:, a:b].max(axis=1)
    cols["object_err/cube"] = np.full(LENGTH, 0.002)
    psnr = np.full(LENGTH, np.nan)
    psnr[::2] = 43.0  # image stride 2
    psnr[0] = math.inf  # identical first frame
    cols[f"image/{CAMERA}/psnr"] = psnr
    cols[f"image/{CAMERA}/ssim"] = np.where(np.isnan(psnr), np.nan, 0.99)
    cols["reward"] = np.zeros(LENGTH)
    cols["success"] = np.zeros(LENGTH)
    cols["unstable"] = np.zeros(LENGTH)
    return cols


def make_result(offset_from: int | None = 20, settings: ReplaySettings | None = None) -> ReplayResult:
    profile = available_profiles()["aloha-transfer-cube"]
    settings = settings or ReplaySettings(image_stride=2, tolerances=Tolerances())  # fixed, not the profile
    cols = columns(offset_from)
    checks = divergence.checks_for(profile, settings.tolerances, cols)
    found = divergence.find_divergences(cols, checks, settings.tolerances.consecutive_steps)
    summary = divergence.summarize(cols, state_names=NAMES, objects=list(profile.objects))
    verdict = divergence.decide_verdict(found, summary, length=LENGTH, tolerances=settings.tolerances,
                                        replayed_success=False, recorded_success=None, unstable_step=None)
    meta = DatasetMeta(root=Path("/data/cube"), codebase_version="v3.0", fps=50.0, robot_type="aloha",
                       total_episodes=1, total_frames=LENGTH, features={}, tasks=("transfer",),
                       repo_id="someone/aloha_cube")
    initial = InitialState(robot=np.zeros(14), objects={"cube": Pose(np.array([0.01, 0.5, 0.05]))},
                           method="estimated", residual=0.7,
                           details={"pixels": np.int64(812), "score": np.nan})
    return ReplayResult(meta=meta, episode_index=3, length=LENGTH, profile=profile, settings=settings,
                        initial_state=initial, metrics=cols, divergence=found, summary=summary,
                        verdict=verdict, versions=report.versions(), task="transfer",
                        timings_ms_per_step={"physics": np.float32(0.8)})


def strict_load(path: Path) -> dict:
    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_report_folder_holds_strict_json_with_the_core_schema(tmp_path):
    out = report.write_episode_report(make_result(), tmp_path / "aloha_cube" / "episode_000003", plots=False)
    assert out == tmp_path / "aloha_cube" / "episode_000003"
    doc = strict_load(out / "report.json")
    for key in ("schema_version", "tool_version", "dataset", "episode", "length", "profile", "versions",
                "settings", "initial_state", "summary", "verdict", "divergence"):
        assert key in doc
    assert doc["schema_version"] == "1.0"
    assert doc["dataset"]["repo_id"] == "someone/aloha_cube" and doc["dataset"]["fps"] == 50.0
    assert doc["episode"] == 3 and doc["length"] == LENGTH and doc["profile"] == "aloha-transfer-cube"
    assert doc["settings"]["image_stride"] == 2 and doc["settings"]["tolerances"]["arm_rad"] == 0.05
    assert doc["settings"]["hash"] == report.settings_hash(make_result().settings, "aloha-transfer-cube")
    assert doc["initial_state"]["method"] == "estimated"
    assert doc["initial_state"]["objects"]["cube"]["position"] == [0.01, 0.5, 0.05]
    assert doc["initial_state"]["details"] == {"pixels": 812, "score": None}
    assert doc["verdict"]["status"] == "fail" and doc["verdict"]["first_divergence_step"] == 20
    assert doc["divergence"]["right_arm"] == 20 and doc["divergence"]["left_arm"] is None
    assert doc["divergence_details"]["right_arm"]["limit"] == 0.05
    summary = doc["summary"]
    assert summary["per_joint_max_abs"]["right_j1"] == pytest.approx(0.3)
    assert summary["image_psnr_mean"] == pytest.approx((100.0 + 43.0 * 29) / 30)  # inf capped at 100 dB
    assert summary["image_frames_identical"] == 1
    assert summary["object_position_error_mm_max"] == pytest.approx(2.0)
    assert doc["versions"]["numpy"] == np.__version__
    assert "report.md" in {p.name for p in out.iterdir()}


def test_steps_parquet_has_one_row_per_step_and_every_column(tmp_path):
    result = make_result()
    out = report.write_episode_report(result, tmp_path / "ep", plots=False)
    table = pq.read_table(out / "steps.parquet")
    assert table.num_rows == LENGTH
    assert set(table.column_names) == {"step", *result.metrics}
    assert table.column("step").to_pylist() == list(range(LENGTH))
    psnr = np.asarray(table.column(f"image/{CAMERA}/psnr"))
    assert math.isinf(psnr[0]) and math.isnan(psnr[1]) and psnr[2] == 43.0


def test_markdown_states_verdict_reasons_and_plots(tmp_path):
    out = report.write_episode_report(make_result(), tmp_path / "ep", plots=True)
    md = (out / "report.md").read_text()
    assert "FAIL" in md and "right_arm diverges at step 20" in md
    assert "Steps around the first divergence (step 20)" in md
    for png in ("joints.png", "objects.png", "images.png"):
        assert (out / png).stat().st_size > 1000
        assert f"({png})" in md


def test_a_clean_replay_reports_pass_and_no_divergence_table_rows(tmp_path):
    out = report.write_episode_report(make_result(offset_from=None), tmp_path / "ep", plots=False)
    doc = report.read_report(out)
    assert doc["verdict"] == {"status": "pass", "first_divergence_step": None, "reasons": [], "cause": None,
                              "evidence": []}
    assert "no divergence beyond tolerance" in (out / "report.md").read_text()


def test_rewriting_replaces_only_that_episode_folder(tmp_path):
    first = report.write_episode_report(make_result(), tmp_path / "ds" / "episode_000003", plots=False)
    (first / "stale.txt").write_text("from an older run")
    sibling = report.write_episode_report(make_result(), tmp_path / "ds" / "episode_000004", plots=False)
    report.write_episode_report(make_result(offset_from=None), first, plots=False)
    assert not (first / "stale.txt").exists()
    assert report.read_report(first)["verdict"]["status"] == "pass"
    assert report.read_report(sibling)["verdict"]["status"] == "fail"
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["episode_000003", "episode_000004"]


def test_a_crash_mid_write_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    out = report.write_episode_report(make_result(), tmp_path / "ds" / "episode_000003", plots=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report, "_write_parquet", crash)  # report.json is already written when this runs
    with pytest.raises(OSError, match="disk full"):
        report.write_episode_report(make_result(offset_from=None), out, plots=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["episode_000003"]  # no temp folder left


def test_a_crash_during_the_swap_restores_the_previous_report(tmp_path, monkeypatch):
    out = report.write_episode_report(make_result(), tmp_path / "ep", plots=False)
    before = (out / "report.json").read_text()
    real_replace = report.os.replace

    def failing_replace(src, dst):
        if Path(dst) == out and ".tmp-" in Path(src).name:
            raise OSError("interrupted")
        return real_replace(src, dst)

    monkeypatch.setattr(report.os, "replace", failing_replace)
    with pytest.raises(OSError, match="interrupted"):
        report.write_episode_report(make_result(offset_from=None), out, plots=False)
    assert (out / "report.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ep"]


def test_settings_hash_is_stable_and_sensitive():
    a = ReplaySettings(mode="images", image_stride=2, tolerances=Tolerances(arm_rad=0.05))
    b = ReplaySettings(mode="images", image_stride=2, tolerances=Tolerances(arm_rad=0.05))
    assert report.settings_hash(a, "p") == report.settings_hash(b, "p")
    assert len(report.settings_hash(a, "p")) == 16
    assert report.settings_hash(a, "p") != report.settings_hash(a, "q")
    assert report.settings_hash(a, "p") != report.settings_hash(dataclasses.replace(a, image_stride=3), "p")
    tighter = dataclasses.replace(a, tolerances=Tolerances(arm_rad=0.04))
    assert report.settings_hash(a, "p") != report.settings_hash(tighter, "p")


def test_read_report_refuses_missing_files_and_unknown_schema(tmp_path):
    with pytest.raises(InputError, match="no report at"):
        report.read_report(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"schema_version": "2.0"}))
    with pytest.raises(InputError, match="schema_version '2.0'; expected 1.0"):
        report.read_report(tmp_path / "report.json")
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        report.read_report(tmp_path)


def test_versions_names_the_simulation_stack():
    found = report.versions()
    assert {"mujoco", "dm_control", "numpy", "replay_check"} <= set(found)


def test_jsonable_turns_numpy_and_non_finite_values_into_plain_json():
    value = {"a": np.float32(1.5), "b": np.array([1, 2]), "c": (np.inf, -np.inf, np.nan), "d": np.bool_(True),
             "e": Path("/x"), 1: None}
    expected = {"a": 1.5, "b": [1, 2], "c": [None, None, None], "d": True, "e": "/x", "1": None}
    assert report.jsonable(value) == expected


def test_the_divergence_table_follows_the_strided_metric_that_diverged(tmp_path):
    result = make_result(offset_from=None)
    psnr = result.metrics[f"image/{CAMERA}/psnr"]
    psnr[30::2] = 12.0  # measured on even steps only
    checks = divergence.checks_for(result.profile, result.settings.tolerances, result.metrics)
    result.divergence = divergence.find_divergences(result.metrics, checks, 5)
    result.verdict = divergence.decide_verdict(result.divergence, result.summary, length=LENGTH,
                                               tolerances=result.settings.tolerances, replayed_success=None,
                                               recorded_success=None, unstable_step=None)
    assert result.divergence[f"image/{CAMERA}"] == 30
    md = (report.write_episode_report(result, tmp_path / "ep", plots=False) / "report.md").read_text()
    table = md.split("Steps around the first divergence (step 30)")[1].split("## Versions")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "step" not in line]
    steps = [int(line.split("|")[1]) for line in rows]
    assert steps == list(range(24, 46, 2))  # 3 measured before, the 5-frame run, 3 after
