"""Full scripted demonstrations: the replay reproduces them, from stored or from estimated object poses."""

from __future__ import annotations

import numpy as np
import pytest

from replay_check.policies.aloha import sample_object_poses
from replay_check.profiles import available_profiles
from replay_check.replay import replay_episode
from replay_check.steps import ReplaySettings
from tests.sim_episodes import scripted_aloha_episode


@pytest.mark.parametrize(("task", "profile_name", "seed"), [("transfer_cube", "aloha-transfer-cube", 0)])
def test_replay_with_environment_state_is_exact_to_float32(task, profile_name, seed):
    profile = available_profiles()[profile_name]
    episode = scripted_aloha_episode(task, seed, frame0=False, env_state=True)
    result = replay_episode(episode, profile, ReplaySettings(mode="state", tolerances=profile.tolerances))
    assert result.verdict.status == "pass", result.verdict.reasons
    assert result.summary["replayed_success"] and result.summary["recorded_success"]
    # Rows are stored as float32: actions carry ~1e-7 rounding, which the replay must not amplify.
    assert result.summary["state_max_abs"] < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize(("task", "profile_name", "seed"), [("insertion", "aloha-insertion", 5)])
def test_estimated_initial_state_recovers_objects_and_success(task, profile_name, seed):
    profile = available_profiles()[profile_name]
    episode = scripted_aloha_episode(task, seed, frame0=True, env_state=False)
    result = replay_episode(episode, profile, ReplaySettings(mode="state", tolerances=profile.tolerances))
    assert result.initial_state.method == "estimated"
    truth = sample_object_poses(task, seed)
    errors_mm = [1000 * np.linalg.norm(result.initial_state.objects[n].position[:2] - truth[n].position[:2])
                 for n in truth]
    assert max(errors_mm) < 3.0, errors_mm
    assert result.summary["replayed_success"], result.verdict.reasons
    assert result.verdict.status == "pass", result.verdict.reasons
