"""The uncertainty arithmetic behind the estimators: sandwich covariance and quadratic fits."""

from __future__ import annotations

import numpy as np

from replay_check.initial_state import fit


def test_sandwich_matches_least_squares_for_white_noise():
    rng = np.random.default_rng(0)
    jacobian = rng.normal(size=(60, 80, 2))
    residual = rng.normal(0.0, 2.0, size=(60, 80))
    cov = fit.sandwich_covariance(jacobian, residual, tile=1)
    expected = 4.0 * np.linalg.inv(np.einsum("hwd,hwe->de", jacobian, jacobian))
    np.testing.assert_allclose(np.diag(cov), np.diag(expected), rtol=0.1)


def test_sandwich_grows_with_correlated_residuals_and_rejects_blind_jacobians():
    rng = np.random.default_rng(1)
    jacobian = rng.normal(size=(64, 64, 1)) + 1.0
    smooth = np.kron(rng.normal(size=(8, 8)), np.ones((8, 8)))  # residual constant over 8x8 blocks
    white = fit.sandwich_covariance(jacobian, smooth, tile=1)[0, 0]
    tiled = fit.sandwich_covariance(jacobian, smooth, tile=8)[0, 0]
    assert tiled > 3 * white
    assert fit.sandwich_covariance(np.zeros((8, 8, 2)), smooth[:8, :8], tile=2) is None


def test_quadratic_fit_and_staircase_region():
    offsets = fit.stencil(2)
    hessian = np.array([[4.0, 1.0], [1.0, 2.0]])
    costs = [0.5 * o @ hessian @ o + np.array([1.0, -2.0]) @ o + 3.0 for o in offsets]
    fitted, gradient, misfit = fit.fit_quadratic(offsets, costs)
    np.testing.assert_allclose(fitted, hessian, atol=1e-9)
    np.testing.assert_allclose(gradient, [1.0, -2.0], atol=1e-9)
    assert misfit < 1e-9
    np.testing.assert_allclose(fit.staircase_covariance(hessian, 0.5), np.linalg.inv(hessian))
    assert fit.staircase_covariance(-hessian, 0.5) is None
