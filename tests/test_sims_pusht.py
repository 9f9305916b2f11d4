"""PushT adapter: keypoint geometry, exact restore (angle before position), determinism, rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from replay_check.dataset.episode import DatasetMeta, Feature
from replay_check.errors import InputError, ProfileError
from replay_check.families.pusht import objects_from_environment_state
from replay_check.profiles import select_profile
from replay_check.sims import SimSpec, make_adapter
from replay_check.sims.base import InitialState, Pose, SimAdapter
from replay_check.sims.pusht import (
    BLOCK_RGB,
    GOAL_POSE,
    PushTAdapter,
    keypoints_from_pose,
    pose_from_keypoints,
)


@pytest.fixture(scope="module")
def adapter() -> PushTAdapter:
    return PushTAdapter("pusht", {"top": (96, 96)})


def initial(agent: tuple[float, float], block: tuple[float, float, float]) -> InitialState:
    robot = np.array(agent, dtype=float)
    return InitialState(robot=robot, objects={"block": Pose.planar(*block)}, method="test")


POSES = [(256.0, 256.0, 0.0), (349.0, 139.0, -4.594), (101.5, 400.25, 3.0), (200, 300, -3.1)]


@pytest.mark.parametrize("pose", POSES)
def test_keypoints_round_trip(pose):
    x, y, angle = pose_from_keypoints(keypoints_from_pose(*pose))
    assert (x, y) == pytest.approx(pose[:2], abs=1e-9)
    assert np.angle(np.exp(1j * (angle - pose[2]))) == pytest.approx(0.0, abs=1e-12)


def test_keypoints_match_gym_pusht_order(adapter):
    adapter.restore(initial((100, 100), (300.0, 200.0, 1.234)))
    gym_kp = adapter.env.get_keypoints(adapter.env._block_shapes).reshape(16)
    np.testing.assert_allclose(adapter.environment_state(), gym_kp, atol=1e-9)


def test_pose_from_float32_keypoints_is_subpixel():
    kp = keypoints_from_pose(349.0, 139.0, -4.594231648737936).astype(np.float32)
    x, y, angle = pose_from_keypoints(kp)
    assert abs(x - 349.0) < 1e-4 and abs(y - 139.0) < 1e-4
    assert abs(np.angle(np.exp(1j * (angle + 4.594231648737936)))) < 1e-6


def test_pose_from_keypoints_rejects_wrong_width():
    with pytest.raises(InputError, match="16"):
        pose_from_keypoints(np.zeros(14))


def test_is_a_sim_adapter(adapter):
    assert isinstance(adapter, SimAdapter)
    assert isinstance(make_adapter(SimSpec("pusht", "pusht")), PushTAdapter)
    with pytest.raises(ProfileError, match="pushx"):
        PushTAdapter("pushx")


def test_restore_reads_back_rotated_pose_exactly(adapter):
    """gym-pusht's reset_to_state would move a rotated block by (I - R)(0, 45); restore must not."""
    pose = (320.0, 180.0, 2.1)
    adapter.restore(initial((50.0, 60.0), pose))
    assert adapter.block_pose() == pytest.approx(pose, abs=1e-9)
    block = adapter.object_poses()["block"]
    assert block.position[:2] == pytest.approx(pose[:2], abs=1e-9)
    assert block.yaw == pytest.approx(2.1, abs=1e-12)
    np.testing.assert_array_equal(adapter.state(), [50.0, 60.0])
    read_back = objects_from_environment_state(adapter.environment_state(), ("block",))["block"]
    assert read_back.yaw == pytest.approx(2.1)


def test_replay_is_deterministic_and_pushes_block(adapter):
    start = initial((256.0, 420.0), (256.0, 300.0, 0.3))
    actions = [np.array([256.0, 420.0 - 12 * k]) for k in range(20)]

    def run() -> tuple[np.ndarray, tuple[float, float, float]]:
        adapter.restore(start)
        for action in actions:
            adapter.step(action)
        return adapter.state(), adapter.block_pose()

    first, second = run(), run()
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    assert np.hypot(first[1][0] - 256.0, first[1][1] - 300.0) > 5.0  # the agent pushed the block
    assert adapter.unstable() is None


def test_goal_pose_is_success_and_far_pose_is_not(adapter):
    adapter.restore(initial((50.0, 50.0), GOAL_POSE))
    assert adapter.coverage() == pytest.approx(1.0, abs=1e-9)
    assert adapter.success() and adapter.reward() == 1.0
    adapter.restore(initial((50.0, 50.0), (120.0, 120.0, 0.0)))
    assert not adapter.success() and adapter.reward() < 0.2


def test_render_has_observation_size_and_shows_block(adapter):
    adapter.restore(initial((60.0, 60.0), (256.0, 150.0, 0.0)))
    image = adapter.render("top")
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    bar_pixel = image[int(165 / 512 * 96), int(256 / 512 * 96)]  # inside the T's bar
    np.testing.assert_allclose(bar_pixel, BLOCK_RGB, atol=3)
    with pytest.raises(InputError, match="front"):
        adapter.render("front")


def test_step_rejects_bad_action(adapter):
    with pytest.raises(InputError, match="action"):
        adapter.step(np.zeros(3))


@pytest.mark.parametrize(("repo_id", "robot_type"), [("lerobot/pusht", "2d pointer"), (None, "unknown")])
def test_pusht_profile_is_chosen_for_pusht_datasets(repo_id, robot_type):
    features = {
        "observation.state": Feature("observation.state", "float32", (2,)),
        "action": Feature("action", "float32", (2,)),
        "observation.image": Feature("observation.image", "video", (96, 96, 3)),
    }
    tasks = ("Push the T-shaped block onto the target.",)
    meta = DatasetMeta(Path("/x/pusht"), "v3.0", 10.0, robot_type, 1, 10, features, tasks, repo_id=repo_id)
    profile = select_profile(meta)
    assert profile.name == "pusht" and profile.adapter == "pusht"
    assert profile.cameras == {"observation.image": "top"}
    assert profile.objects == ("block",)


def test_advance_is_env_step_bit_for_bit():
    """advance runs env.step's substeps itself: the same trajectory, contacts included, over random pushes."""
    ours, theirs = PushTAdapter("pusht", {"top": (96, 96)}), PushTAdapter("pusht", {"top": (96, 96)})
    rng = np.random.default_rng(7)
    start = initial((256.0, 420.0), (256.0, 300.0, 0.7))
    ours.restore(start)
    theirs.restore(start)
    target, touched = np.array([256.0, 420.0]), 0
    for _ in range(150):
        # a random walk pulled towards the block, so the agent keeps pushing it
        target = np.clip(target + rng.normal(0, 25, 2) + 0.2 * (np.array(theirs.block_pose()[:2]) - target), 0, 512)
        ours.advance(target)
        theirs.env.step(target)
        mine, reference = ours.snapshot(), theirs.snapshot()  # state, then the contact segments drawn
        assert mine.tobytes() == reference.tobytes()
        assert ours.env.n_contact_points == theirs.env.n_contact_points
        touched += mine.size > 10
    assert touched > 10  # the walk did push the block (contacts were compared, not only free motion)
    ours.close()
    theirs.close()


def test_importing_the_adapter_skips_pkg_resources():
    """pygame's pkg_resources import is ~0.1 s of each render worker's start and is not needed (a fresh process)."""
    import subprocess
    import sys

    code = "import sys, replay_check.sims.pusht; print('pkg_resources' in sys.modules, 'pygame' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "True"]


def test_coverage_with_the_goal_built_once_is_the_coverage_built_afresh():
    warm, fresh = PushTAdapter("pusht", {"top": (96, 96)}), PushTAdapter("pusht", {"top": (96, 96)})
    rng = np.random.default_rng(3)
    values = []
    for k in range(40):
        pose = (float(rng.uniform(180, 330)), float(rng.uniform(180, 330)), float(rng.uniform(-np.pi, np.pi)))
        if k % 10 == 0:  # a restore builds a new block: the goal is built again for it
            warm.restore(initial((100.0, 100.0), pose))
        warm.set_pose(np.array([100.0, 100.0]), pose)
        fresh.set_pose(np.array([100.0, 100.0]), pose)
        fresh._goal_cache = None
        assert warm.coverage() == fresh.coverage()
        values.append(warm.coverage())
    assert max(values) > 0.3 and min(values) < max(values)  # poses overlapping the goal, by varying amounts
    warm.close()
    fresh.close()


@pytest.mark.parametrize("size", [(96, 96), (80, 120)])
def test_render_is_gym_pusht_get_img_bit_for_bit(size):
    adapter = PushTAdapter("pusht", {"top": size})
    adapter.restore(initial((256.0, 420.0), (256.0, 300.0, 0.7)))
    rng = np.random.default_rng(5)
    target = np.array([256.0, 420.0])
    for _ in range(30):
        target = np.clip(target + rng.normal(0, 25, 2) + 0.2 * (np.array(adapter.block_pose()[:2]) - target), 0, 512)
        adapter.step(target)
        theirs = adapter.env._get_img(adapter.env._draw(), width=size[1], height=size[0], render_action=False)
        mine = adapter.render("top")
        assert mine.shape == (*size, 3) and mine.dtype == np.uint8 and mine.flags.c_contiguous
        np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(adapter.render_snapshot("top", adapter.snapshot()), theirs)
    adapter.close()
