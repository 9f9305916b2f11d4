"""The ALOHA adapter: exact restore, gym-aloha's own reward, object layout, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from replay_check.errors import ProfileError
from replay_check.families.aloha import objects_from_environment_state
from replay_check.policies.aloha import sample_object_poses
from replay_check.sims.aloha import AlohaAdapter, qpos_to_robot_state, robot_state_to_qpos
from replay_check.sims.base import InitialState
from tests.sim_episodes import scripted_rows


def test_restore_puts_robot_and_objects_exactly_where_asked():
    adapter = AlohaAdapter("insertion")
    state = np.array([0.1, -0.9, 1.1, 0.05, -0.3, 0.2, 0.7, -0.1, -0.95, 1.2, 0.0, -0.25, 0.1, 0.3])
    objects = sample_object_poses("insertion", 11)
    adapter.restore(InitialState(state, objects, "truth"))
    assert np.allclose(adapter.state(), state, atol=1e-12)
    assert np.allclose(adapter.environment_state()[:3], objects["peg"].position)
    assert np.allclose(adapter.object_poses()["socket"].position, objects["socket"].position)
    read_back = objects_from_environment_state(adapter.environment_state(), adapter.object_names)
    assert read_back["peg"].position.shape == (3,)
    assert np.allclose(qpos_to_robot_state(robot_state_to_qpos(state)), state)


def test_reward_is_gym_alohas_own_on_every_step_of_a_demonstration():
    rows = scripted_rows("insertion", 5)
    adapter = AlohaAdapter("insertion")
    adapter.restore(InitialState(rows[0].state, sample_object_poses("insertion", 5), "truth"))
    seen = set()
    for row in rows:
        adapter.step(row.action)
        ours = adapter.reward()
        assert ours == adapter.task.get_reward(adapter.physics)
        seen.add(ours)
    assert 4.0 in seen and adapter.success() == (adapter.reward() == 4.0)


def test_unknown_task_and_wrong_state_width_are_errors():
    with pytest.raises(ProfileError, match="unknown gym-aloha task 'stack'"):
        AlohaAdapter("stack")
    with pytest.raises(ValueError, match=r"shape \(13,\). Expected \(14,\)"):
        robot_state_to_qpos(np.zeros(13))


def test_kept_cameras_render_what_a_fresh_dm_control_render_gives_bit_for_bit():
    """Each (camera, size) keeps one dm_control Camera; every frame must equal `physics.render`'s own, also
    after a hypothesis, a render at another size and a snapshot render, and earlier frames stay as returned."""
    rows = scripted_rows("insertion", 3)
    adapter = AlohaAdapter("insertion", {"top": (480, 640)})
    fresh = AlohaAdapter("insertion", {"top": (480, 640)})
    try:
        objects = sample_object_poses("insertion", 3)
        adapter.restore(InitialState(rows[0].state, objects, "truth"))

        def same(frame, physics=adapter.physics, size=(480, 640)):
            expected = physics.render(height=size[0], width=size[1], camera_id="top")
            assert frame.shape == expected.shape and frame.dtype == expected.dtype
            assert np.array_equal(frame, expected)

        first = adapter.render("top")
        kept = first.copy()
        same(first)
        start = adapter.snapshot()
        for row in rows[:10]:
            adapter.step(row.action)
        stepped = adapter.render("top")
        same(stepped)
        assert not np.array_equal(stepped, kept)
        assert np.array_equal(first, kept)  # the later render did not write into the earlier frame
        moved = {name: type(pose)(pose.position + np.array([0.02, -0.01, 0.0]), pose.quaternion)
                 for name, pose in objects.items()}
        small = adapter.render_hypothesis("top", rows[0].state, moved, size=(120, 160))
        fresh.restore(InitialState(rows[0].state, moved, "truth"))
        same(small, fresh.physics, (120, 160))
        same(adapter.render_hypothesis("top", rows[0].state, moved), fresh.physics)
        same(adapter.render("top"))  # back in the stepped state, full size again
        back = adapter.render_snapshot("top", start)
        fresh.restore(InitialState(rows[0].state, objects, "truth"))
        same(back, fresh.physics)
    finally:
        adapter.close()
        fresh.close()
