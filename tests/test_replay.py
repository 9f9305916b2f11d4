"""The replay engine on in-memory ALOHA episodes: exact reproduction, fault localisation, bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from replay_check.errors import InputError
from replay_check.profiles import available_profiles
from replay_check.replay import replay_episode
from replay_check.steps import ReplaySettings
from tests.sim_episodes import ArrayFrames, aloha_episode

STEPS = 80


@pytest.fixture(scope="module")
def profile():
    return available_profiles()["aloha-transfer-cube"]


@pytest.fixture(scope="module")
def episode():
    return aloha_episode("transfer_cube", steps=STEPS, seed=0)


def state_mode(profile):
    return ReplaySettings(mode="state", tolerances=profile.tolerances)


def test_exact_replay_reproduces_the_recording(episode, profile):
    result = replay_episode(episode, profile, state_mode(profile))
    assert result.verdict.status == "pass", result.verdict.reasons
    assert result.initial_state.method == "environment_state"
    assert result.summary["state_max_abs"] < 1e-9
    assert all(step is None for step in result.divergence.values())
    assert result.metrics["state_rms"].shape == (STEPS,)


def test_joint_offset_from_step_k_is_caught_in_that_arm(episode, profile):
    k = 30
    actions = episode.action.copy()
    actions[k:, 8] += 0.3  # right shoulder
    faulty = dataclasses.replace(episode, action=actions)
    result = replay_episode(faulty, profile, state_mode(profile))
    assert result.verdict.status == "fail"
    first = result.divergence["right_arm"]
    assert first is not None and k <= first <= k + 10
    assert result.divergence["left_arm"] is None
    assert k <= result.verdict.first_divergence_step <= k + 10


def test_actions_of_another_episode_diverge_early(episode, profile):
    other = aloha_episode("transfer_cube", steps=STEPS, seed=7, objects={"cube": _cube(episode)})
    swapped = dataclasses.replace(episode, action=other.action)
    result = replay_episode(swapped, profile, state_mode(profile))
    assert result.verdict.status == "fail"
    assert result.verdict.first_divergence_step <= 15


def test_wrong_gripper_scale_is_caught_in_the_grippers(episode, profile):
    actions = episode.action.copy()
    actions[:, [6, 13]] *= 0.5
    result = replay_episode(dataclasses.replace(episode, action=actions), profile, state_mode(profile))
    assert result.verdict.status == "fail"
    grippers = [result.divergence[g] for g in ("left_gripper", "right_gripper") if result.divergence[g] is not None]
    assert grippers and min(grippers) <= 15


@pytest.mark.slow
def test_video_shifted_by_a_few_frames_diverges_at_frame_zero(profile):
    episode = aloha_episode("transfer_cube", steps=14, seed=3, render=True)
    frames = episode.cameras["observation.images.top"].frames
    late = ArrayFrames(frames[3:] + frames[-1:] * 3)
    shifted = dataclasses.replace(episode, cameras={"observation.images.top": late})
    settings = ReplaySettings(mode="images", tolerances=profile.tolerances)
    good = replay_episode(episode, profile, settings)
    bad = replay_episode(shifted, profile, settings)
    assert np.nanmin(good.metrics["image/observation.images.top/psnr"]) > 40
    assert good.verdict.status == "pass", good.verdict.reasons
    assert bad.verdict.status == "fail"
    assert bad.verdict.first_divergence_step == 0
    assert bad.divergence["video_offset/observation.images.top"] == 0
    assert any("offset by +3 frame" in reason for reason in bad.verdict.reasons), bad.verdict.reasons


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: dataclasses.replace(e, action=e.action[:, :13]), "action has width 13"),
        (lambda e: dataclasses.replace(e, state=e.state[:, :12]), "observation.state has width 12"),
        (lambda e: dataclasses.replace(e, action=_with_nan(e.action)), "non-finite value .* at frame 5"),
        (lambda e: dataclasses.replace(e, state=e.state[:1], action=e.action[:1], timestamps=e.timestamps[:1]),
         "at least 2"),
        (lambda e: dataclasses.replace(e, cameras={"observation.images.wrist": ArrayFrames([np.zeros((4, 4, 3))])}),
         "observation.images.wrist"),
    ],
)
def test_bad_input_is_a_clear_error(episode, profile, change, message):
    settings = ReplaySettings(mode="images", tolerances=profile.tolerances)
    with pytest.raises(InputError, match=message):
        replay_episode(change(episode), profile, settings)


def test_a_simulation_that_blows_up_is_a_divergence_not_a_crash(episode, profile):
    from replay_check.replay import adapter_for

    adapter = adapter_for(episode, profile, physics={"timestep": 0.5})  # unstable integration
    result = replay_episode(episode, profile, state_mode(profile), adapter=adapter)
    adapter.close()
    assert result.verdict.status == "fail"
    assert any("unstable" in reason or "blew up" in reason or "physics" in reason for reason in result.verdict.reasons)


def _cube(episode):
    from replay_check.sims.base import Pose

    return Pose(episode.environment_state[0, :3].copy(), episode.environment_state[0, 3:7].copy())


def _with_nan(actions):
    actions = actions.copy()
    actions[5, 2] = np.nan
    return actions
def test_resolved_configuration_is_picklable_and_checks_mode_once(profile):
    import pickle

    from replay_check.config import ReplayOptions, resolve
    from replay_check.dataset.episode import DatasetMeta
    from replay_check.errors import InputError

    meta = DatasetMeta(root=Path("ds"), codebase_version="v3.0", fps=50.0, robot_type="aloha", total_episodes=1,
                       total_frames=10, features={}, tasks=("insertion",))
    config = resolve(ReplayOptions(profile=profile.name, mode="images", tolerance_overrides={"arm_rad": 0.01}), meta)
    assert config.settings.mode == "state"  # no camera in the metadata
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.settings.tolerances.arm_rad == 0.01
    with pytest.raises(InputError, match="mode 'video'"):
        resolve(ReplayOptions(profile=profile.name, mode="video"), meta)
