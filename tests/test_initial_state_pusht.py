"""PushT block pose from a frame: render at a known pose, estimate it back."""

from __future__ import annotations

import numpy as np
import pytest

from replay_check.errors import EstimationError
from replay_check.initial_state.pusht import estimate_pusht_initial_state, measure_block
from replay_check.sims.base import InitialState, Pose
from replay_check.sims.pusht import PushTAdapter


@pytest.fixture(scope="module")
def adapter() -> PushTAdapter:
    return PushTAdapter("pusht", {"top": (96, 96)})


def angle_error_deg(a: float, b: float) -> float:
    return float(np.rad2deg(abs((a - b + np.pi) % (2 * np.pi) - np.pi)))


def render_at(adapter: PushTAdapter, agent: tuple[float, float], block: tuple[float, float, float]):
    robot = np.array(agent, dtype=float)
    adapter.restore(InitialState(robot=robot, objects={"block": Pose.planar(*block)}, method="truth"))
    return adapter.render("top")


# Agent far from the block, and agent beside the block's bar (the block is drawn over it).
CASES = [((420.0, 90.0), (213.3, 187.6, 2.4)), ((245.0, 330.0), (301.7, 342.2, -0.7))]


@pytest.mark.parametrize(("agent", "block"), CASES)
def test_estimate_recovers_rendered_pose_to_subunit(adapter, agent, block):
    frame = render_at(adapter, agent, block)
    initial = estimate_pusht_initial_state(frame, np.array(agent), adapter)
    pose = initial.objects["block"]
    assert initial.method == "estimated"
    assert np.hypot(pose.position[0] - block[0], pose.position[1] - block[1]) < 1.0
    assert angle_error_deg(pose.yaw, block[2]) < 1.0
    assert initial.residual is not None and initial.residual < 5.0
    assert {"coarse", "render_evals"} <= set(initial.details)
    np.testing.assert_array_equal(initial.robot, agent)
    # The 1-sigma is finite, positive and of the size of the actual error (not 0, not the arena).
    sigma = initial.uncertainty["block"]
    assert 0.05 < sigma.position[0] < 3.0 and 0.05 < sigma.position[1] < 3.0 and sigma.position[2] == 0.0
    assert np.deg2rad(0.05) < sigma.angle < np.deg2rad(3.0)
    assert abs(pose.position[0] - block[0]) < 4 * sigma.position[0] + 0.1
    assert abs(pose.position[1] - block[1]) < 4 * sigma.position[1] + 0.1


def test_measure_block_is_within_a_few_units(adapter):
    frame = render_at(adapter, (60.0, 450.0), (330.0, 240.0, 1.1))
    x, y, angle = measure_block(frame, adapter)
    assert np.hypot(x - 330.0, y - 240.0) < 3.0
    assert angle_error_deg(angle, 1.1) < 3.0


def test_frame_without_block_is_an_estimation_error(adapter):
    blank = np.full((96, 96, 3), 255, np.uint8)
    with pytest.raises(EstimationError, match="block"):
        estimate_pusht_initial_state(blank, np.array([100.0, 100.0]), adapter)
    assert measure_block(blank, adapter) is None


def test_block_meter_tracks_a_moving_block_and_recovers_after_it_vanishes(adapter):
    from replay_check.initial_state.pusht_track import BlockMeter

    meter = BlockMeter()
    for i in range(8):
        block = (200.0 + 4 * i, 260.0 - 3 * i, 0.5 + 0.05 * i)
        found = meter.measure(render_at(adapter, (420.0, 90.0), block))
        assert np.hypot(found[0] - block[0], found[1] - block[1]) < 3.0, (i, found, block)  # silhouette: ~1-2 px
        assert angle_error_deg(found[2], block[2]) < 2.0
    assert meter.measure(np.full((96, 96, 3), 255, np.uint8)) is None
    far = (320.0, 150.0, -1.2)  # a jump: the warm start must fall back to the full search
    found = meter.measure(render_at(adapter, (420.0, 90.0), far))
    assert np.hypot(found[0] - far[0], found[1] - far[1]) < 2.0
