"""The adapter protocol as a process boundary sees it: picklable values, snapshots, hypotheses, lean imports."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from replay_check.errors import ProfileError
from replay_check.policies.aloha import sample_object_poses
from replay_check.sims import SimAdapter, SimSpec, make_adapter
from replay_check.sims.base import InitialState, Pose

ALOHA = SimSpec("aloha", "transfer_cube", cameras={"top": (48, 64)})
PUSHT = SimSpec("pusht", "pusht", cameras={"top": (96, 96)})


@pytest.fixture(params=[ALOHA, PUSHT], ids=["aloha", "pusht"])
def running(request):
    """An adapter of each family a few steps into an episode, and the actions it still has to take."""
    adapter = make_adapter(request.param)
    if request.param.family == "aloha":
        robot = np.array([0, -0.96, 1.16, 0, -0.3, 0, 0.5] * 2)
        initial = InitialState(robot, sample_object_poses("transfer_cube", 3), "truth")
        actions = [robot + 0.01 * k for k in range(1, 7)]
    else:
        initial = InitialState(np.array([200.0, 300.0]), {"block": Pose.planar(250.0, 250.0, 0.4)}, "truth")
        actions = [np.array([220.0 + 5 * k, 260.0]) for k in range(6)]
    adapter.restore(initial)
    for action in actions[:3]:
        adapter.step(action)
    yield adapter, actions[3:]
    adapter.close()


def test_builds_from_a_picklable_spec_and_returns_picklable_observations(running):
    adapter, actions = running
    assert isinstance(adapter, SimAdapter)
    observation = adapter.step(actions[0])
    again = pickle.loads(pickle.dumps(observation))
    assert np.array_equal(again.state, observation.state) and again.success == observation.success
    assert pickle.loads(pickle.dumps(ALOHA)) == ALOHA


def test_render_snapshot_is_bit_identical_and_leaves_the_state_alone(running):
    adapter, actions = running
    snapshot = adapter.snapshot()
    expected = adapter.render("top")
    before = adapter.observe()
    adapter.step(actions[0])
    after = adapter.snapshot()
    assert np.array_equal(adapter.render_snapshot("top", snapshot), expected)
    # pymunk recomputes its centre of gravity from position and angle: contacts may move by an ulp
    assert np.allclose(adapter.snapshot(), after, rtol=0, atol=1e-9)
    assert not np.array_equal(adapter.observe().state, before.state)


def test_render_hypothesis_renders_that_pose_and_restores_the_previous_state(running):
    adapter, actions = running
    current = adapter.snapshot()
    observed = adapter.observe()
    moved = {name: Pose(pose.position + np.array([0.03, 0.0, 0.0]) * (1 if adapter.object_names != ("block",)
                                                                    else 1000), pose.quaternion)
             for name, pose in observed.objects.items()}
    image = adapter.render_hypothesis("top", observed.state, moved)
    assert image.shape == adapter.render("top").shape and image.dtype == np.uint8
    assert not np.array_equal(image, adapter.render("top"))
    assert np.allclose(adapter.snapshot(), current, rtol=0, atol=1e-9)
    # stepping on is unaffected by the detour
    assert np.allclose(adapter.step(actions[0]).state, adapter.observe().state)


def test_set_robot_state_moves_the_robot_only(running):
    adapter, _ = running
    observed = adapter.observe()
    target = observed.state + 0.01
    adapter.set_robot_state(target)
    now = adapter.observe()
    assert np.allclose(now.state, target, atol=1e-9)
    for name, pose in observed.objects.items():
        assert np.allclose(now.objects[name].position, pose.position)


def test_contacts_and_body_poses(running):
    adapter, _ = running
    names, positions, quaternions = adapter.body_poses()
    assert len(names) == len(set(names)) == positions.shape[0] == quaternions.shape[0]
    assert positions.shape[1] == 3 and quaternions.shape[1] == 4
    assert adapter.body_poses()[0] == names
    for pair in adapter.contacts():
        assert len(pair) == 2 and all(isinstance(n, str) for n in pair)


def test_aloha_reports_table_contacts_and_takes_a_timestep_override():
    adapter = make_adapter(SimSpec("aloha", "transfer_cube", physics={"timestep": 0.001}))
    try:
        adapter.restore(InitialState(np.zeros(14), sample_object_poses("transfer_cube", 0), "truth"))
        for _ in range(10):
            adapter.step(np.zeros(14))
        assert adapter.n_sub_steps == 20
        assert any("box" in a + b for a, b in adapter.contacts())
    finally:
        adapter.close()
    with pytest.raises(ProfileError, match="gravity"):
        make_adapter(SimSpec("aloha", "transfer_cube", physics={"gravity": 1.0}))


def test_unknown_family_is_a_profile_error():
    with pytest.raises(ProfileError, match="unknown simulator family 'nope'"):
        make_adapter(SimSpec("nope", "x"))


def test_registry_and_adapters_import_without_the_main_process_packages():
    """A simulator worker has numpy, scipy, opencv and the simulator only."""
    code = (
        "import sys\n"
        "HEAVY = ('rerun', 'pyarrow', 'matplotlib', 'av', 'huggingface_hub', 'click')\n"
        "import replay_check.sims, replay_check.families\n"
        "from replay_check.families import family\n"
        "for name in ('aloha', 'pusht'): family(name)\n"
        "import replay_check.sims.aloha, replay_check.sims.pusht\n"
        "heavy = [m for m in HEAVY if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
