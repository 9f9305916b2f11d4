"""The per-frame PushT tracker's parts: colour likelihood, smooth silhouette model and its Jacobian."""

from __future__ import annotations

import numpy as np
import pytest

from replay_check.errors import EstimationError
from replay_check.initial_state.pusht_track import (
    BLOCK_RGB,
    COLOUR_RADIUS,
    OUTLINE_RGB,
    BlockMeter,
    SilhouetteFit,
    blockness,
)


def test_blockness_is_the_distance_to_the_nearer_block_colour():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    frame[0, 0], frame[0, 1], frame[0, 2] = BLOCK_RGB, OUTLINE_RGB, (255, 255, 255)
    pixels = frame.astype(np.float64)
    distance = np.minimum(np.linalg.norm(pixels - BLOCK_RGB, axis=-1), np.linalg.norm(pixels - OUTLINE_RGB, axis=-1))
    expected = np.clip(1.0 - distance / COLOUR_RADIUS, 0.0, 1.0)
    found = blockness(frame)
    assert found.shape == (12, 10)
    np.testing.assert_allclose(found, expected, atol=1e-5)
    assert found[0, 0] == found[0, 1] == 1.0 and found[0, 2] == 0.0


def model_frame(pose) -> np.ndarray:
    """The model's own coverage of a 96x96 frame, as a likelihood to fit."""
    fit = SilhouetteFit(np.zeros((96, 96)))
    (rows, cols), model, _ = fit.model(np.asarray(pose, float))
    frame = np.zeros((96, 96))
    frame[rows, cols] = model
    return frame


def test_jacobian_matches_finite_differences_of_the_model():
    pose = np.array([251.3, 198.7, 0.83])
    fit = SilhouetteFit(model_frame(pose + [2.0, -1.5, 0.05]))
    window, model, grad = fit.model(pose, jacobian=True)
    assert grad.shape == (*model.shape, 3) and np.any(grad)
    for axis, eps in enumerate((1e-4, 1e-4, 1e-6)):
        offset = np.zeros(3)
        offset[axis] = eps
        plus, minus = (fit.model(pose + sign * offset)[1] for sign in (1, -1))
        numeric = (plus - minus) / (2 * eps)
        # the model is piecewise linear: away from a kink the derivative is exact
        assert np.mean(np.abs(numeric - grad[..., axis]) < 1e-4 * (1 + np.abs(numeric))) > 0.99, axis


def test_refine_and_search_recover_the_pose_of_a_clean_silhouette():
    truth = np.array([301.0, 222.0, -2.1])
    fit = SilhouetteFit(model_frame(truth))
    pose, cost = fit.refine(truth + [3.0, -2.0, 0.04])
    assert np.all(np.abs(pose - truth) < [0.05, 0.05, 1e-3]), pose
    assert cost < 1e-6
    pose, _ = fit.search()
    angle = (pose[2] - truth[2] + np.pi) % (2 * np.pi) - np.pi
    assert np.hypot(*(pose[:2] - truth[:2])) < 0.1 and abs(angle) < 1e-3


def test_meter_rejects_a_frame_that_is_not_rgb():
    with pytest.raises(EstimationError, match="HxWx3"):
        BlockMeter().measure(np.zeros((96, 96)))
