"""ALOHA object recovery from frame 0: render a frame at a known pose, estimate it back, measure objects.

Frames are rendered here (no shared datasets); each estimate costs ~28 renders of 480x640.
"""

from __future__ import annotations

import numpy as np
import pytest
from gym_aloha import constants

from replay_check.errors import EstimationError
from replay_check.initial_state.aloha import ObjectMeter, color_mask, estimate_aloha_objects
from replay_check.sims.aloha import AlohaAdapter, qpos_to_robot_state
from replay_check.sims.base import InitialState, Pose
from replay_check.sims.camera import PinholeCamera

HEIGHT, WIDTH = 480, 640
ROBOT = qpos_to_robot_state(np.asarray(constants.START_ARM_POSE, dtype=np.float64))
COLORS = {"insertion": {"peg": "red", "socket": "blue"}, "transfer_cube": {"cube": "red"}}


def random_objects(task: str, rng: np.random.Generator) -> dict[str, Pose]:
    """Object poses at spawn height, drawn from the ranges gym-aloha samples from."""
    ranges = {
        "peg": ((0.1, 0.2), (0.4, 0.6)),
        "socket": ((-0.2, -0.1), (0.4, 0.6)),
        "cube": ((0.0, 0.2), (0.4, 0.6)),
    }
    names = ("peg", "socket") if task == "insertion" else ("cube",)
    return {n: Pose(np.array([rng.uniform(*ranges[n][0]), rng.uniform(*ranges[n][1]), 0.05])) for n in names}


def render_frame(adapter: AlohaAdapter, objects: dict[str, Pose], rng: np.random.Generator) -> np.ndarray:
    """Frame 0 as a dataset holds it: rendered after reset, plus a little noise standing in for the codec."""
    adapter.restore(InitialState(robot=ROBOT, objects=objects, method="truth"))
    frame = adapter.physics.render(height=HEIGHT, width=WIDTH, camera_id="top").astype(np.float64)
    return np.clip(frame + rng.normal(0.0, 1.0, frame.shape), 0, 255).astype(np.uint8)


def paint_out(frame: np.ndarray, color: str) -> np.ndarray:
    """The frame with every pixel of `color` replaced by the table's grey."""
    painted = frame.copy()
    table_grey = np.median(frame[HEIGHT // 2 - 40 : HEIGHT // 2 + 40, WIDTH // 2], axis=0)
    painted[color_mask(frame, color)] = table_grey
    return painted


@pytest.fixture(scope="module")
def insertion():
    adapter = AlohaAdapter("insertion")
    rng = np.random.default_rng(7)
    objects = random_objects("insertion", rng)
    yield adapter, objects, render_frame(adapter, objects, rng)
    adapter.close()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["transfer_cube", "insertion"])
def test_estimate_recovers_random_pose_within_3mm(task, insertion):
    if task == "insertion":
        adapter, truth, frame = insertion
    else:
        adapter = AlohaAdapter(task)
        truth = random_objects(task, np.random.default_rng(3))
        frame = render_frame(adapter, truth, np.random.default_rng(4))
    estimate = estimate_aloha_objects(frame, ROBOT, adapter, camera="top", colors=COLORS[task])

    assert estimate.method == "estimated"
    np.testing.assert_array_equal(estimate.robot, ROBOT)
    assert set(estimate.objects) == set(truth)
    for name, pose in estimate.objects.items():
        error_mm = 1000 * np.linalg.norm(pose.position[:2] - truth[name].position[:2])
        assert error_mm < 3.0, f"{name}: {error_mm:.2f} mm"
        assert pose.position[2] == pytest.approx(0.05)
        np.testing.assert_array_equal(pose.quaternion, [1.0, 0.0, 0.0, 0.0])
        details = estimate.details[name]
        assert {"pixel_centroid", "coarse_position", "refined_position", "iterations"} <= set(details)
        assert details["renders"] <= 40
        sigma = estimate.uncertainty[name].position
        assert np.all(sigma[:2] > 1e-5) and np.all(sigma[:2] < 2e-3) and sigma[2] == 0.0, sigma
        assert np.all(np.abs(pose.position[:2] - truth[name].position[:2]) < 4 * sigma[:2] + 2e-4), name
    assert 0.0 <= estimate.residual < 5.0  # mean abs error (0-255) in the object windows at the estimate
    if task != "insertion":
        adapter.close()


def test_colours_default_to_the_model(insertion):
    """Without profile colours, each object's colour comes from its geoms (socket: blue, not its red pin)."""
    adapter, truth, frame = insertion
    meter = ObjectMeter(adapter, "top", HEIGHT, WIDTH, colors={})
    assert {g.name: g.color for g in meter.geometries} == {"peg": "red", "socket": "blue"}


def test_missing_object_raises_naming_it(insertion):
    adapter, _, frame = insertion
    with pytest.raises(EstimationError, match="'socket'.*not found in frame 0"):
        estimate_aloha_objects(paint_out(frame, "blue"), ROBOT, adapter, colors=COLORS["insertion"])


def test_wrong_frame_shape_raises(insertion):
    adapter, _, frame = insertion
    with pytest.raises(EstimationError, match="expected \\(H, W, 3\\) uint8"):
        estimate_aloha_objects(frame[..., 0], ROBOT, adapter)


def test_meter_reads_resting_objects_and_none_when_unseen(insertion):
    adapter, objects, _ = insertion
    adapter.restore(InitialState(robot=ROBOT, objects=objects, method="truth"))
    for _ in range(40):  # let the objects fall onto the table
        adapter.step(ROBOT)
    resting = adapter.object_poses()
    frame = adapter.physics.render(height=HEIGHT, width=WIDTH, camera_id="top")
    meter = ObjectMeter(adapter, "top", HEIGHT, WIDTH, COLORS["insertion"])

    readings = meter.measure(frame)
    for name, pose in resting.items():
        assert np.linalg.norm(readings[name] - pose.position) < 0.003, name
    assert meter.measure(paint_out(frame, "red"))["peg"] is None
    with pytest.raises(EstimationError, match="expected 480x640"):
        meter.measure(frame[:240])


def test_meter_reading_does_not_move_when_the_frame_is_blurred(insertion):
    """The codec softens coloured edges; the meter's linear chroma centroid must not follow (<= 0.3 mm)."""
    import cv2

    adapter, objects, frame = insertion
    meter = ObjectMeter(adapter, "top", HEIGHT, WIDTH, COLORS["insertion"])
    sharp = meter.measure(frame)
    soft = meter.measure(cv2.GaussianBlur(frame, (0, 0), 1.5))
    for name in objects:
        assert 1000 * np.linalg.norm(sharp[name][:2] - soft[name][:2]) < 0.3, name


def test_camera_round_trip_and_geometry():
    adapter = AlohaAdapter("transfer_cube")
    adapter.physics.forward()
    camera = PinholeCamera.from_physics(adapter.physics, "top", HEIGHT, WIDTH)
    uv = np.array([[0.0, 0.0], [319.5, 239.5], [600.25, 50.75], [12.0, 470.0]])
    for z in (0.0, 0.05, 0.3):
        points = camera.backproject_to_plane(uv, z)
        np.testing.assert_allclose(points[:, 2], z)
        np.testing.assert_allclose(camera.project(points), uv, atol=1e-9)
    # The top camera hangs above the table and looks down: the point below it is the image centre,
    # and +x in the world runs to the right of the image.
    below = camera.center - np.array([0.0, 0.0, camera.center[2]])
    np.testing.assert_allclose(camera.project(below[None])[0], [(WIDTH - 1) / 2, (HEIGHT - 1) / 2], atol=0.5)
    assert camera.project((below + [0.1, 0.0, 0.0])[None])[0, 0] > (WIDTH - 1) / 2
    # A point behind the camera has no pixel.
    assert np.isnan(camera.project((camera.center + [0.0, 0.0, 1.0])[None])).all()
    with pytest.raises(EstimationError, match="'nope'"):
        PinholeCamera.from_physics(adapter.physics, "nope", HEIGHT, WIDTH)
    adapter.close()


def test_meter_blob_window_gives_the_centroid_of_the_largest_component_bit_for_bit():
    """The per-frame path takes the blob's count and bounds from connectedComponentsWithStats; its centroid is
    chroma_centroid of largest_component's blob exactly, with one blob, several, blobs at the border, none."""
    from replay_check.initial_state import aloha

    rng = np.random.default_rng(3)
    stride = aloha.METER_STRIDE
    for trial in range(40):
        frame = rng.integers(0, 90, (96, 128, 3), dtype=np.uint8)
        for _ in range(trial % 4):  # 0-3 red patches, some touching the border
            r, c = rng.integers(-4, 90), rng.integers(-4, 120)
            h, w = rng.integers(4, 24, size=2)
            frame[max(r, 0):max(r + h, 0), max(c, 0):max(c + w, 0), 0] = rng.integers(150, 255)
        mask = aloha.color_mask(frame[::stride, ::stride], "red")
        window = aloha.largest_blob_window(mask)
        blob = aloha.largest_component(mask)
        if window is None:
            assert not blob.any()
            continue
        assert window[3] == int(blob.sum())
        expected = aloha.chroma_centroid(frame, blob, stride, "red")
        got = aloha._window_centroid(frame, window[0], window[1], window[2], stride, "red")
        assert np.array_equal(got, expected), trial
