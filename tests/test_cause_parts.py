"""The cause analysis' parts: ensemble perturbations and workers, re-synced replay, contacts, report output."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from replay_check import cause
from replay_check.cli import cli as cli_main
from replay_check.contacts import ContactTimeline, compare, is_manipulation
from replay_check.divergence_frames import FrameCapture
from replay_check.ensemble import perturb_actions, perturb_initial, run_ensemble
from replay_check.profiles import available_profiles
from replay_check.replay import replay_episode, sim_spec
from replay_check.report import write_episode_report
from replay_check.resync import resync_replay
from replay_check.sims.base import InitialState, ObjectUncertainty, Pose
from replay_check.steps import ReplaySettings, SinkContext, StepRecord
from tests.sim_episodes import ArrayFrames, aloha_episode


@pytest.fixture(scope="module")
def profile():
    return available_profiles()["aloha-transfer-cube"]


@pytest.fixture(scope="module")
def episode():
    return aloha_episode("transfer_cube", steps=30, seed=2)


def _initial(episode, sigma=None) -> InitialState:
    row = episode.environment_state[0]
    uncertainty = {} if sigma is None else {"cube": ObjectUncertainty(np.array([sigma, sigma, 0.0]), 0.01)}
    return InitialState(episode.state[0], {"cube": Pose(row[:3].copy(), row[3:7].copy())}, "estimated",
                        uncertainty=uncertainty)


def test_actions_are_re_rounded_within_float32_resolution(episode):
    actions = episode.action.astype(np.float32).astype(np.float64)
    moved = perturb_actions(actions, np.random.default_rng(0))
    spacing = np.abs(np.spacing(actions.astype(np.float32))).astype(np.float64)
    assert np.all(np.abs(moved - actions) <= 0.5 * spacing)
    assert np.any(moved != actions)


def test_initial_poses_are_drawn_within_their_uncertainty(episode):
    initial = _initial(episode, sigma=0.001)
    draws = np.array([perturb_initial(initial, np.random.default_rng(s)).objects["cube"].position
                      for s in range(400)])
    spread = draws.std(axis=0)
    assert 0.0008 < spread[0] < 0.0012 and 0.0008 < spread[1] < 0.0012
    assert spread[2] < 1e-12  # the spawn height is not estimated: sigma 0
    exact = perturb_initial(_initial(episode), np.random.default_rng(0)).objects["cube"].position
    assert np.all(np.abs(exact - initial.objects["cube"].position) < 1e-6)  # float32 spacing only


@pytest.mark.slow
def test_ensemble_members_are_the_same_in_workers_and_in_process(episode):
    spec = dataclasses.replace(sim_spec(episode, available_profiles()["aloha-transfer-cube"]), cameras={})
    initial = _initial(episode, sigma=0.002)
    inline, cost1 = run_ensemble(spec, initial, episode.action, 3, processes=1)
    spread, cost2 = run_ensemble(spec, initial, episode.action, 3, processes=2)
    assert cost1["processes"] == 1 and cost2["processes"] == 2
    assert [m.seed for m in spread] == [0, 1, 2]
    for a, b in zip(inline, spread, strict=True):
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_array_equal(a.objects["cube"], b.objects["cube"])
    assert not np.array_equal(inline[0].objects["cube"][0], inline[1].objects["cube"][0])


def test_resync_of_a_faithful_replay_has_no_one_step_error(episode, profile):
    spec = sim_spec(episode, profile)
    result = resync_replay(episode, profile, spec, _initial(episode), profile.tolerances, every=1)
    assert result.jump(5) is None
    assert max(np.nanmax(v) for g, v in result.errors.items() if g in result.robot_groups) < 1e-6
    assert set(result.robot_groups) == set(profile.state_groups)
    assert result.limits["left_arm"] == pytest.approx(0.1 * profile.tolerances.arm_rad)
    every5 = resync_replay(episode, profile, spec, _initial(episode), profile.tolerances, every=5)
    measured = np.flatnonzero(np.isfinite(every5.errors["left_arm"]))
    assert list(measured) == [t + 1 for t in range(0, episode.length - 1, 5)]


def test_a_contact_timeline_lists_pairs_and_phases():
    timeline = ContactTimeline()
    timeline.add(0, [("a/left", "a/right"), ("box", "table")])
    timeline.add(1, [("box", "a/left"), ("table", "box")])
    timeline.add(2, [("a/left", "box")])
    rows = timeline.to_list()
    assert rows[0] == {"bodies": ["a/left", "a/right"], "first": 0, "last": 0, "steps": 1}
    assert {"bodies": ["a/left", "box"], "first": 1, "last": 2, "steps": 2} in rows
    assert list(timeline.phase()) == [False, True, True]
    assert not is_manipulation(("box", "table")) and not is_manipulation(("a/left", "a/right"))
    other = [{"bodies": ["a/left", "box"], "first": 5, "last": 9, "steps": 5}]
    assert compare(rows, other, "A", "B") == ["a/left-box contact from step 1 on A, from step 5 on B"]
    assert compare(rows, [], "A", "B") == ["a/left-box contact from step 1 on A, never on B"]


def test_report_carries_cause_evidence_frames_and_analyses(episode, profile, tmp_path):
    actions = episode.action.copy()
    actions[10:, 8] += 0.3
    faulty = dataclasses.replace(episode, action=actions)
    settings = ReplaySettings(mode="state", tolerances=profile.tolerances)
    result = replay_episode(faulty, profile, settings)
    result, diagnosis = cause.run(result, faulty, profile, sim_spec(faulty, profile), processes=1)
    assert "resync/right_arm" in result.metrics
    capture = FrameCapture()
    frame = np.zeros((8, 8, 3), np.uint8)
    key = "observation.images.top"
    shown = dataclasses.replace(faulty, cameras={key: ArrayFrames([frame] * faulty.length)})
    capture.start(SinkContext(shown, profile, ReplaySettings(), (key,), ()))
    for t in (8, 12):
        capture(t, SimpleNamespace(snapshot=lambda t=t: np.array([float(t)])))
        capture.on_step(StepRecord(t, 0.0, faulty.state[t], faulty.state[t], None, {}, recorded_frames={key: frame},
                                   replayed_frames={key: frame + 100}), {})
    renderer = SimpleNamespace(render_snapshot=lambda camera, snapshot: frame + int(snapshot[0]))
    entry, files = capture.write(result, tmp_path, renderer)
    assert entry["step"] == 12 and set(files) == {f"divergence_top_{k}.png" for k in ("recorded", "replayed", "diff")}
    result.divergence_frames = entry
    out = write_episode_report(result, tmp_path / "report", plots=False, files=files)
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"]["cause"] == "data"
    assert report["verdict"]["evidence"][0].startswith("one-step error jumps at step 11 on right_arm")
    assert report["extra"]["diagnosis"]["resync"]["first_exceeding"]["right_arm"] == 11
    markdown = (out / "report.md").read_text()
    assert "**Cause: `data`**" in markdown and "## Re-synced replay" in markdown
    assert "![diff](divergence_top_diff.png)" in markdown and (out / "divergence_top_diff.png").exists()
    assert diagnosis.costs["resync_seconds"] > 0


def test_cli_has_the_analysis_options_and_rejects_bad_counts():
    runner = CliRunner()
    help_text = runner.invoke(cli_main, ["run", "--help"]).output
    for option in ("--ensemble", "--resync", "--strict"):
        assert option in help_text
    bad = runner.invoke(cli_main, ["run", "--ensemble", "-1"])
    assert bad.exit_code == 2 and "--ensemble" in bad.output
