"""The 1-sigma of a render-and-compare pose estimate, from the images at its optimum.

Both estimators minimise a sum of squared image differences r(theta) = render(theta) - frame. Near
the optimum r ~ r0 + A d, with A the image Jacobian (one image per pose parameter, from central
differences of renders), and the least-squares estimate moves by d = (A^T A)^-1 A^T r. The residual
at the truth is not white noise: it is codec blur and renderer differences on the objects' edges,
exactly where A lives, and correlated over a few pixels. So the covariance is the cluster-robust
("sandwich") one, (A^T A)^-1 (sum over tiles of S_t S_t^T) (A^T A)^-1 with S_t = sum of r * A over a
tile of pixels: it weighs the residual where it moves the estimate and counts each tile (wider than
the residual's correlation) as one independent sample.
"""

from __future__ import annotations

import numpy as np


def central_jacobian(plus: list[np.ndarray], minus: list[np.ndarray], steps: np.ndarray) -> np.ndarray:
    """(..., d) image Jacobian from renders at +step and -step along each of the d pose parameters."""
    columns = [(np.asarray(p, np.float64) - np.asarray(m, np.float64)) / (2.0 * s)
               for p, m, s in zip(plus, minus, steps, strict=True)]
    return np.stack(columns, axis=-1)


def sandwich_covariance(jacobian: np.ndarray, residual: np.ndarray, tile: int) -> np.ndarray | None:
    """Cluster-robust covariance of a least-squares image fit; None when the images do not fix the pose.

    `jacobian` is (H, W, [C,] d), `residual` (H, W, [C]); channels of a pixel and pixels of a `tile` x
    `tile` block are treated as one correlated sample.
    """
    jac = np.asarray(jacobian, np.float64)
    res = np.asarray(residual, np.float64)
    dims = jac.shape[-1]
    if res.ndim == 2:
        res, jac = res[..., None], jac[:, :, None, :]
    height, width = res.shape[:2]
    information = np.einsum("hwcd,hwce->de", jac, jac)
    if not np.all(np.isfinite(information)) or np.linalg.eigvalsh(information).min() <= 1e-12 * max(
        1.0, float(np.trace(information))
    ):
        return None
    scores = np.einsum("hwc,hwcd->hwd", res, jac)
    pad_h, pad_w = -height % tile, -width % tile
    scores = np.pad(scores, ((0, pad_h), (0, pad_w), (0, 0)))
    tiles = scores.reshape((height + pad_h) // tile, tile, (width + pad_w) // tile, tile, dims).sum(axis=(1, 3))
    tiles = tiles.reshape(-1, dims)
    bread = np.linalg.inv(information)
    return bread @ (tiles.T @ tiles) @ bread


def stencil(dims: int) -> np.ndarray:
    """The 3^dims grid of offsets in {-1, 0, 1}: enough samples for a full quadratic in `dims` variables."""
    grids = np.meshgrid(*([np.array([-1.0, 0.0, 1.0])] * dims), indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def fit_quadratic(offsets: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares quadratic c0 + g.x + x^T H x / 2 through (offset, cost) samples: (H, g, RMS misfit)."""
    offsets = np.asarray(offsets, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    n, dims = offsets.shape
    pairs = [(i, j) for i in range(dims) for j in range(i, dims)]
    design = np.column_stack([offsets[:, i] * offsets[:, j] for i, j in pairs] + [offsets, np.ones((n, 1))])
    coef, *_ = np.linalg.lstsq(design, costs, rcond=None)
    hessian = np.zeros((dims, dims))
    for (i, j), value in zip(pairs, coef[: len(pairs)], strict=True):
        hessian[i, j] = hessian[j, i] = 2.0 * value if i == j else value
    misfit = float(np.sqrt(np.mean((design @ coef - costs) ** 2)))
    return hessian, coef[len(pairs) : len(pairs) + dims], misfit


def staircase_covariance(hessian: np.ndarray, misfit: float) -> np.ndarray | None:
    """Poses whose smooth cost rises by less than the cost's own jaggedness (`misfit`) are not told apart.

    Rasterised renders make the cost piecewise constant; the ellipsoid d^T H d / 2 <= misfit is taken
    as the 1-sigma region of where a minimiser of the jagged cost lands. None when H has no minimum.
    """
    if np.linalg.eigvalsh(hessian).min() <= 0:
        return None
    return 2.0 * misfit * np.linalg.inv(hessian)
