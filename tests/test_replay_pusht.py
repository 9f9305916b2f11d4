"""PushT through the same engine: exact replays, estimated block pose, injected faults, keypoints-only data."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from replay_check.dataset import open_dataset
from replay_check.dataset.writer import DatasetWriter
from replay_check.pipeline import RunRequest, run_episode
from replay_check.profiles import available_profiles
from replay_check.record import record_dataset
from replay_check.replay import replay_episode
from replay_check.sims.pusht import pose_from_keypoints
from replay_check.steps import ReplaySettings
from tests.report_paths import report_folder

SEED = 3  # the scripted pusher succeeds on it (tests/test_policies_pusht.py)


@pytest.fixture(scope="module")
def pusht_pair(tmp_path_factory):
    """The same scripted episode recorded with and without environment_state (the policy is deterministic)."""
    base = tmp_path_factory.mktemp("pusht")
    with_state = base / "pusht_keypoints_like"
    without = base / "pusht_like"
    record_dataset("pusht", 1, with_state, seed=SEED, env_state=True, progress=False)
    record_dataset("pusht", 1, without, seed=SEED, env_state=False, progress=False)
    return with_state, without


@pytest.fixture(scope="module")
def keypoints_only(pusht_pair, tmp_path_factory):
    """A copy of the env-state dataset without its camera, like lerobot/pusht_keypoints."""
    source = open_dataset(root=pusht_pair[0])
    episode = source.episode(0)
    root = tmp_path_factory.mktemp("kp") / "keypoints_only"
    features = {key: {"dtype": f.dtype, "shape": list(f.shape), "names": list(f.names) if f.names else None}
                for key, f in source.meta.features.items()
                if not f.is_camera and key not in ("timestamp", "frame_index", "episode_index", "index", "task_index")}
    with DatasetWriter(root, fps=10, features=features, robot_type=source.meta.robot_type) as writer:
        for t in range(episode.length):
            writer.add_frame({
                "observation.state": episode.state[t].astype(np.float32),
                "action": episode.action[t].astype(np.float32),
                "observation.environment_state": episode.environment_state[t].astype(np.float32),
                "next.reward": np.float32(episode.reward[t]),
                "next.success": bool(episode.success[t]),
                "next.done": bool(episode.done[t]),
            }, task=episode.task)
        writer.save_episode()
    return root


def run(root, tmp_path, **kwargs):
    request = RunRequest(root=root, report_dir=tmp_path, rerun=None, plots=False, **kwargs)
    return run_episode(request).result


def test_replay_with_keypoints_reproduces_the_recording(pusht_pair, tmp_path):
    result = run(pusht_pair[0], tmp_path)
    assert result.profile.name == "pusht"
    assert result.initial_state.method == "environment_state"
    assert result.verdict.status == "pass", result.verdict.reasons
    assert result.summary["state_max_abs"] < 1e-3  # float32 rows, px
    assert np.nanmax(result.metrics["object_err/block"]) < 1e-2
    assert result.summary["replayed_success"] and result.summary["recorded_success"]
    assert np.nanmin(result.metrics["image/observation.image/psnr"]) > 30


def test_estimated_block_pose_meets_target_and_coverage_is_reproduced(pusht_pair, tmp_path):
    truth = pose_from_keypoints(open_dataset(root=pusht_pair[0]).episode(0).environment_state[0])
    result = run(pusht_pair[1], tmp_path)
    assert result.initial_state.method == "estimated"
    block = result.initial_state.objects["block"]
    assert math.dist(block.position[:2], truth[:2]) < 2.0
    angle_error = abs((block.yaw - truth[2] + math.pi) % (2 * math.pi) - math.pi)
    assert math.degrees(angle_error) < 2.0
    recorded_reward = open_dataset(root=pusht_pair[1]).episode(0).reward
    assert abs(result.summary["replayed_max_reward"] - recorded_reward.max()) < 0.05
    assert result.summary["replayed_success"]


def test_action_offset_from_step_k_fails_near_k(pusht_pair):
    profile = available_profiles()["pusht"]
    episode = open_dataset(root=pusht_pair[0]).episode(0)
    k = 20
    actions = episode.action.copy()
    actions[k:] += 10.0
    result = replay_episode(dataclasses.replace(episode, action=actions), profile,
                            ReplaySettings(mode="state", tolerances=profile.tolerances))
    assert result.verdict.status == "fail"
    assert k <= result.verdict.first_divergence_step <= k + 6, result.divergence


def test_keypoints_only_dataset_replays_with_state_metrics_only(keypoints_only, tmp_path):
    result = run(keypoints_only, tmp_path)
    assert result.settings.mode == "state"
    assert not any(name.startswith("image/") for name in result.metrics)
    assert result.verdict.status == "pass", result.verdict.reasons
    report = json.loads((report_folder(tmp_path, keypoints_only) / "episode_000000" / "report.json").read_text())
    assert report["initial_state"]["method"] == "environment_state"


def test_env_state_from_a_twin_dataset_gives_exact_block_poses(pusht_pair, tmp_path):
    result = run(pusht_pair[1], tmp_path, env_state_from=str(pusht_pair[0]), mode="state")
    assert result.initial_state.method == "environment_state"
    assert np.nanmax(result.metrics["object_err/block"]) < 1e-2


def test_pusht_overlay_draws_the_t_and_agent_in_image_pixels():
    from replay_check.overlays import pusht_overlay
    from replay_check.steps import StepRecord

    step = StepRecord(t=0, timestamp=0.0, recorded_state=np.array([256.0, 128.0]),
                      replayed_state=np.array([256.0, 128.0]), action=None,
                      recorded_objects={"block": np.array([256.0, 256.0, 0.0])}, recorded_object_angles={"block": 0.0},
                      replayed_objects={"block": np.array([266.0, 256.0, 0.0])}, replayed_object_angles={"block": 0.0})
    shapes = pusht_overlay(96, 96)(step)
    bar, stem = shapes["recorded"]["outline"]
    assert bar.shape == (5, 2) and np.allclose(bar[0], bar[-1])  # closed
    assert np.allclose(bar[0], np.array([256 - 60, 256]) * 96 / 512)
    assert np.allclose(shapes["replayed"]["outline"][0] - bar, [10 * 96 / 512, 0])
    assert np.allclose(shapes["recorded"]["points"][0], [48.0, 24.0])


def test_pusht_run_writes_a_recording(pusht_pair, tmp_path):
    outcome = run_episode(RunRequest(root=pusht_pair[0], report_dir=tmp_path, plots=False))
    assert outcome.rrd_path.stat().st_size > 0


@pytest.mark.slow
def test_validate_takes_environment_state_from_a_twin(pusht_pair, tmp_path):
    """--env-state-from reaches validate's workers through the resolved configuration."""
    from replay_check.validate import ValidateRequest, validate_dataset

    request = ValidateRequest(root=pusht_pair[1], env_state_from=str(pusht_pair[0]), mode="state",
                              report_dir=tmp_path, plots=False, workers=1)
    batch = validate_dataset(request)
    assert batch.counts["pass"] == 1, batch.summary
    report = json.loads((report_folder(tmp_path, pusht_pair[1]) / "episode_000000" / "report.json").read_text())
    assert report["initial_state"]["method"] == "environment_state"


@pytest.mark.parametrize("stride", [1, 3])
def test_recorded_frames_measured_ahead_give_the_serial_result(pusht_pair, stride):
    import threading

    episode = open_dataset(root=pusht_pair[1]).episode(0)
    profile = available_profiles()["pusht"]
    settings = ReplaySettings(mode="images", tolerances=profile.tolerances, image_stride=stride)
    results = {ahead: replay_episode(episode, profile, settings, recorded_ahead=ahead) for ahead in (False, True)}
    assert not [t for t in threading.enumerate() if t.name == "replay-check-recorded"]  # gone after the replay
    serial, ahead = results[False], results[True]
    assert "ahead_objects" in ahead.timings_ms_per_step and "ahead_objects" not in serial.timings_ms_per_step
    assert sorted(serial.metrics) == sorted(ahead.metrics)
    assert any(name.startswith("block") or "object" in name for name in serial.metrics)
    for name, column in serial.metrics.items():
        np.testing.assert_array_equal(ahead.metrics[name], column, err_msg=name)
    assert serial.verdict == ahead.verdict
