"""Nightly orchestration: config parsing, Hub fallback to recorded stand-ins, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay_check.errors import ConfigError
from replay_check.nightly import NightlyConfig, OfflineDataset, hub_reachable, load_config, main, run_nightly

REPO = Path(__file__).resolve().parent.parent


def test_checked_in_config_pins_the_three_hub_datasets_and_records_aloha_without_env_state():
    config = load_config(REPO / "nightly.toml")
    assert [d.repo_id for d in config.hub] == [
        "lerobot/aloha_sim_insertion_human", "lerobot/aloha_sim_transfer_cube_human", "lerobot/pusht"]
    assert all(d.revision for d in config.hub)
    aloha = [d for d in config.offline if d.env.startswith("aloha")]
    assert {d.env for d in config.offline} == {"aloha-insertion", "aloha-transfer-cube", "pusht"}
    assert aloha and not any(d.env_state for d in aloha)


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text('[[hub]]\nrepo_id = "a/b"\nepisode = "0:3"\n')
    with pytest.raises(ConfigError, match=r"\[\[hub\]\]: unknown key\(s\) \['episode'\]"):
        load_config(path)
    path.write_text("[[offline]]\nepisodes = 2\n")
    with pytest.raises(ConfigError, match="env"):
        load_config(path)


def test_hf_hub_offline_counts_as_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable("lerobot/pusht") is False


class FakeBatch:
    def __init__(self, code: int):
        self.code = code
        self.counts = {"pass": 1 - code, "fail": code}
        self.paths = {"html": "summary.html"}

    def exit_code(self, strict: bool = False) -> int:
        return self.code


def test_unreachable_hub_records_stand_ins_and_fails_when_one_batch_fails(tmp_path):
    config = load_config(REPO / "nightly.toml")
    recorded, validated, lines = [], [], []

    def record(env, episodes, root, **kw):
        recorded.append((env, episodes, kw["env_state"]))

    def validate(request):
        validated.append(request)
        return FakeBatch(1 if "pusht" in str(request.root) else 0)

    code = run_nightly(config, tmp_path, validate=validate, record=record, reachable=lambda *a: False,
                       log=lines.append)
    assert code == 1
    assert "unreachable" in lines[0]
    assert recorded == [("aloha-insertion", 2, False), ("aloha-transfer-cube", 2, False), ("pusht", 2, True)]
    assert all(r.repo_id is None and r.report_dir == tmp_path for r in validated)
    saved = json.loads((tmp_path / "nightly.json").read_text())
    assert saved["hub"] is False and [b["exit_code"] for b in saved["batches"]] == [0, 0, 1]


def test_reachable_hub_validates_pinned_revisions(tmp_path):
    config = load_config(REPO / "nightly.toml")
    validated = []

    def validate(request):
        validated.append(request)
        return FakeBatch(0)

    assert run_nightly(config, tmp_path, validate=validate, reachable=lambda *a: True, log=lambda s: None) == 0
    assert [(r.repo_id, r.revision, r.episodes) for r in validated][0] == (
        "lerobot/aloha_sim_insertion_human", "main", "0:5")
    validated.clear()
    run_nightly(config, tmp_path, offline=True, validate=validate, record=lambda *a, **k: None,
                reachable=lambda *a: pytest.fail("--offline must not contact the Hub"), log=lambda s: None)
    assert all(r.root is not None for r in validated)


@pytest.mark.slow
def test_offline_nightly_records_and_validates_for_real(tmp_path):
    config = NightlyConfig(offline=[OfflineDataset("pusht", episodes=1, steps=20, mode="state")], workers=1)
    assert run_nightly(config, tmp_path, offline=True, log=lambda s: None) == 0
    summary = json.loads(next(tmp_path.glob("pusht-*/summary.json")).read_text())
    assert summary["counts"]["pass"] == 1


def test_main_reports_bad_config_with_exit_2(tmp_path, capsys):
    path = tmp_path / "n.toml"
    path.write_text("[nightly]\n")
    assert main(["--config", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key(s) ['nightly']" in capsys.readouterr().err


def test_run_table_sends_batches_to_a_ray_cluster(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text('[run]\nexecutor = "ray"\nray_address = "10.0.0.5:6379"\ncpus_per_task = 2\n'
                    '[[hub]]\nrepo_id = "a/b"\n')
    validated = []

    def validate(request):
        validated.append(request)
        return FakeBatch(0)

    assert run_nightly(load_config(path), tmp_path, validate=validate, reachable=lambda *a: True,
                       log=lambda s: None) == 0
    assert [(r.executor, r.ray_address, r.cpus_per_task) for r in validated] == [("ray", "10.0.0.5:6379", 2.0)]
