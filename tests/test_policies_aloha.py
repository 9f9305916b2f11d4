"""Scripted ALOHA policies: seeded object poses, waypoint interpolation, and task success (physics only)."""

from __future__ import annotations

import numpy as np
import pytest
from gym_aloha import constants

from replay_check.errors import InputError
from replay_check.policies.aloha import (
    Waypoint,
    axis_angle_quat,
    interpolate,
    rollout_aloha,
    sample_object_poses,
    slerp,
)
from replay_check.sims.aloha import qpos_to_robot_state
from tests.sim_episodes import scripted_rows


def test_object_poses_follow_seed_and_spawn_areas():
    first, again, other = (sample_object_poses("insertion", s) for s in (3, 3, 4))
    assert set(first) == {"peg", "socket"}
    for name in first:
        np.testing.assert_array_equal(first[name].position, again[name].position)
        np.testing.assert_array_equal(first[name].quaternion, [1, 0, 0, 0])
        assert first[name].position[2] == 0.05
    assert not np.allclose(first["peg"].position, other["peg"].position)
    assert 0.1 <= first["peg"].position[0] <= 0.2 and -0.2 <= first["socket"].position[0] <= -0.1
    cubes = [sample_object_poses("transfer_cube", s)["cube"].position for s in range(20)]
    xs, ys = np.array(cubes)[:, 0], np.array(cubes)[:, 1]
    assert xs.min() >= 0.0 and xs.max() <= 0.2 and ys.min() >= 0.4 and ys.max() <= 0.6


def test_unknown_task_is_an_input_error():
    with pytest.raises(InputError, match="unknown scripted ALOHA task"):
        sample_object_poses("stack_blocks", 0)
    with pytest.raises(InputError, match="steps is 0"):
        next(rollout_aloha("insertion", 0, steps=0))


def test_interpolate_holds_ends_and_blends_between():
    quarter = axis_angle_quat((0, 0, 1), 90)
    plan = [Waypoint(0, (0, 0, 0), (1, 0, 0, 0), 1.0), Waypoint(10, (1, 2, 3), tuple(quarter), 0.0)]
    xyz, quat, grip = interpolate(plan, 5)
    np.testing.assert_allclose(xyz, [0.5, 1.0, 1.5])
    np.testing.assert_allclose(quat, axis_angle_quat((0, 0, 1), 45), atol=1e-12)
    assert grip == pytest.approx(0.5)
    np.testing.assert_allclose(interpolate(plan, 50)[0], [1, 2, 3])
    np.testing.assert_allclose(interpolate(plan, -3)[1], [1, 0, 0, 0])


def test_slerp_takes_the_short_arc():
    q = axis_angle_quat((1, 0, 0), 30)
    np.testing.assert_allclose(slerp(q, -q, 0.5), q, atol=1e-12)


def _episode(task: str, seed: int, steps: int):
    if steps == 400:  # the full demonstration, shared with other modules
        return list(scripted_rows(task, seed))
    return list(rollout_aloha(task, seed, steps=steps, render=False))


def test_rollout_rows_start_at_rest_pose_and_carry_no_images_in_state_mode():
    frames = _episode("transfer_cube", 0, 5)
    assert len(frames) == 5
    start = qpos_to_robot_state(np.asarray(constants.START_ARM_POSE, dtype=np.float64))
    np.testing.assert_allclose(frames[0].state, start, atol=1e-9)
    cube = sample_object_poses("transfer_cube", 0)["cube"]
    np.testing.assert_allclose(frames[0].environment_state[:3], cube.position)
    assert all(f.images == {} and f.action.shape == (14,) and f.environment_state.shape == (7,) for f in frames)


@pytest.mark.parametrize(("task", "seed"), [("transfer_cube", 0), ("insertion", 5)])
def test_scripted_policy_solves_task(task, seed):
    frames = _episode(task, seed, 400)
    assert any(f.success for f in frames), f"{task} seed {seed} never succeeded"
    assert max(f.reward for f in frames) == 4.0
