"""The cause of a divergence, on recorded episodes with each cause injected (state mode unless images matter)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from replay_check import cause
from replay_check.profiles import available_profiles
from replay_check.replay import replay_episode, sim_spec
from replay_check.sims import make_adapter
from replay_check.sims.base import InitialState, ObjectUncertainty, Pose
from replay_check.steps import ReplaySettings
from tests.sim_episodes import ArrayFrames, aloha_episode, scripted_aloha_episode

STEPS = 60


@pytest.fixture(scope="module")
def profile():
    return available_profiles()["aloha-transfer-cube"]


@pytest.fixture(scope="module")
def episode():
    return aloha_episode("transfer_cube", steps=STEPS, seed=0)


@pytest.fixture(scope="module")
def filmed():
    """A short sweep with small frames (rendering is the slow part on CPU)."""
    return aloha_episode("transfer_cube", steps=14, seed=3, render=True, size=(96, 128))


def diagnosed(episode, profile, *, mode="state", physics=None, render=None, initial=None, **settings):
    """Replay (with the simulator changed as given) and run the cause analysis on the result."""
    spec = dataclasses.replace(sim_spec(episode, profile, physics), render=dict(render or {}))
    config = ReplaySettings(mode=mode, tolerances=profile.tolerances, **settings)
    result = replay_episode(episode, profile, config, adapter=make_adapter(spec), initial_state=initial,
                            render_workers=0)  # the workers would render with the default light
    return cause.run(result, episode, profile, spec, processes=1)


def test_a_consistent_episode_passes_with_no_cause(episode, profile):
    result, diagnosis = diagnosed(episode, profile, resync=1, ensemble=2)
    assert result.verdict.status == "pass"
    assert result.verdict.cause is None and diagnosis.line is None
    assert diagnosis.resync.jump(5) is None
    assert diagnosis.ensemble.statuses == ["pass", "pass"]


def test_no_analysis_runs_on_a_pass_unless_asked(episode, profile):
    result, diagnosis = diagnosed(episode, profile)
    assert diagnosis.resync is None and diagnosis.ensemble is None
    assert result.diagnosis == {"resync": None, "ensemble": None}
    assert set(result.diagnosis_seconds) == {"total"}


def test_an_action_offset_from_step_k_is_data_at_k(episode, profile):
    k = 30
    actions = episode.action.copy()
    actions[k:, 8] += 0.3
    result, diagnosis = diagnosed(dataclasses.replace(episode, action=actions), profile)
    assert result.verdict.cause == "data", result.verdict.evidence
    jump = diagnosis.resync.jump(5)
    assert jump.group == "right_arm" and k <= jump.step <= k + 1
    assert diagnosis.line.startswith(f"data: one-step error jumps at step {jump.step} on right_arm")
    assert diagnosis.ensemble is None  # the cheap evidence settled it


def test_actions_of_another_episode_are_data(episode, profile):
    other = aloha_episode("transfer_cube", steps=STEPS, seed=7)
    result, _ = diagnosed(dataclasses.replace(episode, action=other.action), profile)
    assert result.verdict.cause == "data"
    assert any("action-response cosine" in line for line in result.verdict.evidence), result.verdict.evidence
    assert cause.action_response(episode, profile)["left_arm"] > 0.6


def test_a_perturbed_initial_pose_is_initial_state(episode, profile):
    row = episode.environment_state[0]
    moved = InitialState(episode.state[0], {"cube": Pose(row[:3] + [0.02, 0.0, 0.0], row[3:7])}, "estimated",
                         uncertainty={"cube": ObjectUncertainty(np.array([0.0005, 0.0005, 0.0]))})
    result, _ = diagnosed(episode, profile, initial=moved)
    assert result.verdict.cause == "initial_state"
    assert "cube is 20 mm off" in result.verdict.evidence[0]


def test_a_timestep_that_blows_up_is_physics(episode, profile):
    result, _ = diagnosed(episode, profile, physics={"timestep": 0.02})
    assert result.verdict.status == "fail"
    assert result.verdict.cause == "physics", result.verdict.evidence


@pytest.mark.slow
def test_a_shifted_video_is_data(filmed, profile):
    frames = filmed.cameras["observation.images.top"].frames
    late = ArrayFrames(frames[2:] + frames[-1:] * 2)
    result, _ = diagnosed(dataclasses.replace(filmed, cameras={"observation.images.top": late}), profile,
                          mode="images")
    assert result.verdict.cause == "data"
    assert "shifted by +2 frame(s)" in result.verdict.evidence[0]


@pytest.mark.slow
def test_a_different_light_is_rendering(filmed, profile):
    result, _ = diagnosed(filmed, profile, mode="images", render={"light_scale": 0.4})
    assert result.verdict.status == "fail"
    assert result.verdict.cause == "rendering", result.verdict.evidence


@pytest.fixture(scope="module")
def handover():
    """A full scripted transfer-cube demonstration with environment_state, rows rounded to float32."""
    return scripted_aloha_episode("transfer_cube", 0, frame0=False, env_state=True)


def _truth(episode) -> dict[str, Pose]:
    row = episode.environment_state[0]
    return {"cube": Pose(row[:3].copy(), row[3:7].copy())}


@pytest.mark.slow
def test_lower_friction_is_physics(handover, profile):
    result, diagnosis = diagnosed(handover, profile, physics={"friction_scale": 0.2}, ensemble=4)
    assert result.verdict.status != "pass"
    assert result.verdict.cause == "physics", result.verdict.evidence
    assert not diagnosis.ensemble.split(result.verdict.status)


@pytest.mark.slow
def test_a_handover_within_the_uncertainty_is_marginal(handover, profile):
    sigma = ObjectUncertainty(np.array([0.0003, 0.0003, 0.0]))
    start = _truth(handover)["cube"]
    initial = InitialState(handover.state[0], {"cube": Pose(start.position + [0.0001, 0.0, 0.0], start.quaternion)},
                           "estimated", uncertainty={"cube": sigma})
    result, diagnosis = diagnosed(handover, profile, initial=initial, ensemble=8)
    assert result.verdict.cause == "marginal", (result.verdict, diagnosis.ensemble.statuses)
    assert result.verdict.status == "warn"
    assert diagnosis.ensemble.split(result.verdict.status)
    strict = cause.apply(dataclasses.replace(result, verdict=dataclasses.replace(result.verdict, status="fail")),
                         diagnosis, strict=True)
    assert strict.verdict.status == "fail"
