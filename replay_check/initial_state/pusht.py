"""PushT block pose from a camera frame: colour mask, coarse pose, then render-and-compare.

lerobot/pusht stores only the agent position, so the block's initial pose must come from frame 0.
The observation image is gym-pusht's 512 px canvas resized to 96x96 with bilinear sampling: one image
pixel spans 5.3 arena units, so a fit of the whole T (not of single edges) is what gets sub-pixel.
Coordinates: arena units (0..512), block pose = pymunk body origin (x, y) and angle (rad).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import optimize

from replay_check.errors import EstimationError
from replay_check.initial_state import fit
from replay_check.initial_state.pusht_track import MIN_BLOCK_FRACTION, T_AREA, T_CENTROID_LOCAL, blockness, wrap_angle
from replay_check.sims.base import InitialState, ObjectUncertainty, Pose, SimAdapter
from replay_check.sims.pusht_geometry import T_KEYPOINTS_LOCAL, rotation

ARENA = 512
# The block is drawn as a filled polygon plus an outline in its darker base colour, which widens
# the silhouette by about 1 unit per side (fitted on rendered frames).
_GROW = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
SILHOUETTE_LOCAL = np.vstack([T_KEYPOINTS_LOCAL[:4] + _GROW, T_KEYPOINTS_LOCAL[4:] + _GROW])
SUBPIXEL_SHIFT = 4  # cv2.fillPoly fixed-point bits


def t_coverage(pose: np.ndarray, height: int, width: int) -> np.ndarray:
    """The T drawn at `pose` on the 512 canvas and resized as gym-pusht does: a 0..1 silhouette."""
    canvas = np.zeros((ARENA, ARENA), np.float32)
    corners = SILHOUETTE_LOCAL @ rotation(pose[2]).T + pose[:2]
    scale = 1 << SUBPIXEL_SHIFT
    for quad in (corners[:4], corners[4:]):
        cv2.fillPoly(canvas, [np.round(quad * scale).astype(np.int32)], 1.0, cv2.LINE_8, SUBPIXEL_SHIFT)
    return cv2.resize(canvas, (width, height))


def coarse_pose(likelihood: np.ndarray) -> tuple[np.ndarray, float]:
    """(x, y, angle) placing the T's centroid on the mask's and trying angles every 5 degrees."""
    height, width = likelihood.shape
    weight = likelihood.sum()
    rows, cols = np.mgrid[0:height, 0:width]
    centroid = np.array(
        [((cols + 0.5) * likelihood).sum() / weight * ARENA / width,
         ((rows + 0.5) * likelihood).sum() / weight * ARENA / height]
    )
    candidates = []
    for angle in np.deg2rad(np.arange(-180.0, 180.0, 5.0)):
        pose = np.array([*(centroid - rotation(angle) @ T_CENTROID_LOCAL), angle])
        candidates.append((silhouette_cost(pose, likelihood), pose))
    cost, pose = min(candidates, key=lambda c: c[0])
    return pose, cost


def silhouette_cost(pose: np.ndarray, likelihood: np.ndarray) -> float:
    """Mean squared difference between the modelled silhouette and the colour likelihood."""
    model = t_coverage(pose, *likelihood.shape)
    return float(np.mean((model - likelihood) ** 2))


def _nelder_mead(cost, start: np.ndarray, steps: tuple[float, float, float], max_evals: int):
    """Nelder-Mead from a simplex of the given (x, y, angle) steps: the costs are piecewise constant."""
    simplex = np.vstack([start, start + np.diag(steps)])
    return optimize.minimize(
        cost,
        start,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 0.02, "fatol": 1e-9, "maxfev": max_evals},
    )


def _find_block(frame: np.ndarray) -> np.ndarray:
    """The colour likelihood of a frame that shows the block; EstimationError naming it otherwise."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise EstimationError(f"PushT frame has shape {frame.shape}; expected HxWx3 to find the block in")
    likelihood = blockness(frame)
    height, width = likelihood.shape
    expected_pixels = T_AREA * height * width / ARENA**2
    if likelihood.sum() < MIN_BLOCK_FRACTION * expected_pixels:
        raise EstimationError(
            f"no 'block' in the {height}x{width} frame: {likelihood.sum():.1f} block-coloured pixels, "
            f"expected about {expected_pixels:.0f}"
        )
    return likelihood


def fit_silhouette(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(coarse pose, silhouette-fitted pose, diagnostics) of the block in one frame."""
    likelihood = _find_block(frame)
    coarse, _ = coarse_pose(likelihood)
    result = _nelder_mead(lambda p: silhouette_cost(p, likelihood), coarse, (4.0, 4.0, np.deg2rad(4.0)), 400)
    return coarse, np.asarray(result.x), {"silhouette_evals": int(result.nfev)}


def measure_block(frame: np.ndarray, adapter: SimAdapter | None = None) -> tuple[float, float, float] | None:
    """Block (x, y, angle) in one frame by silhouette fit (no simulator rendering); None if not seen."""
    del adapter  # the silhouette model needs no simulator; kept for the measure signature
    try:
        _, pose, _ = fit_silhouette(frame)
    except EstimationError:
        return None
    return float(pose[0]), float(pose[1]), wrap_angle(pose[2])


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma as float32. The videos are 4:2:0, so colour edges come at half resolution and
    blurred; luma keeps full-resolution edges and is what the render-and-compare fits."""
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _render_luma(adapter: SimAdapter, robot: np.ndarray, pose: np.ndarray, size: tuple[int, int],
                 camera: str) -> np.ndarray:
    block = Pose.planar(float(pose[0]), float(pose[1]), float(pose[2]))
    return luma(adapter.render_hypothesis(camera, robot, {"block": block}, size=size))


def image_cost(adapter: SimAdapter, robot: np.ndarray, frame_luma: np.ndarray, pose: np.ndarray,
               camera: str = "top") -> float:
    """Mean squared luma difference between a frame and the scene rendered with the block at `pose`."""
    rendered = _render_luma(adapter, robot, pose, frame_luma.shape, camera)
    return float(np.mean((rendered - frame_luma) ** 2))


# Stencil of the uncertainty fit: a few rasterisation steps wide (integer polygon vertices on the
# 512 canvas, sampled every 5.3 units by the resize), so it sees the cost's staircase, not one step.
UNCERTAINTY_STEPS = np.array([1.5, 1.5, np.deg2rad(1.5)])
UNCERTAINTY_TILE_PX = 4  # the AV1 blocks and 4:2:0 chroma correlate residuals over a few pixels


def pose_uncertainty(
    adapter: SimAdapter, robot: np.ndarray, frame_luma: np.ndarray, pose: np.ndarray, camera: str = "top"
) -> tuple[ObjectUncertainty | None, int]:
    """1-sigma of (x, y, angle) at `pose`, and the renders it took (27); None if unidentifiable.

    Two parts (see fit.py): the image residual's effect through the Jacobian (sandwich covariance) and
    the cost's staircase around the optimum (a quadratic through the 27-point stencil).
    """
    offsets = fit.stencil(3)
    renders = [_render_luma(adapter, robot, pose + o * UNCERTAINTY_STEPS, frame_luma.shape, camera) for o in offsets]
    costs = [float(np.mean((r - frame_luma) ** 2)) for r in renders]
    hessian_unit, _, misfit = fit.fit_quadratic(offsets, costs)
    hessian = hessian_unit / np.outer(UNCERTAINTY_STEPS, UNCERTAINTY_STEPS)
    index = {tuple(o): i for i, o in enumerate(offsets)}
    axes = np.eye(3)
    plus = [renders[index[tuple(a)]] for a in axes]
    minus = [renders[index[tuple(-a)]] for a in axes]
    residual = renders[index[(0.0, 0.0, 0.0)]] - frame_luma
    image = fit.sandwich_covariance(fit.central_jacobian(plus, minus, UNCERTAINTY_STEPS), residual,
                                    UNCERTAINTY_TILE_PX)
    stairs = fit.staircase_covariance(hessian, misfit)
    if image is None or stairs is None:
        return None, len(offsets)
    sigma = np.sqrt(np.diag(image + stairs))
    return ObjectUncertainty(position=np.array([sigma[0], sigma[1], 0.0]), angle=float(sigma[2])), len(offsets)


def estimate_pusht_initial_state(
    frame0: np.ndarray, robot_state0: np.ndarray, adapter: SimAdapter, camera: str = "top"
) -> InitialState:
    """Block pose at frame 0: silhouette fit, then render-and-compare of the full scene (agent included).

    Renders candidates through the adapter's `render_hypothesis`, which leaves its state as it was.
    """
    frame = np.asarray(frame0)
    robot = np.asarray(robot_state0, dtype=np.float64).reshape(-1)
    coarse, fitted, details = fit_silhouette(frame)
    frame_luma = luma(frame)

    def cost(pose: np.ndarray) -> float:
        return image_cost(adapter, robot, frame_luma, pose, camera)

    best = np.asarray(fitted)
    evals = 0
    for steps in ((3.0, 3.0, np.deg2rad(3.0)), (1.0, 1.0, np.deg2rad(1.0))):
        result = _nelder_mead(cost, best, steps, 150)
        evals += int(result.nfev)
        if result.fun <= cost(best):
            best = np.asarray(result.x)
    uncertainty, renders = pose_uncertainty(adapter, robot, frame_luma, best, camera)
    rms = float(np.sqrt(cost(best)))
    x, y, angle = float(best[0]), float(best[1]), wrap_angle(best[2])
    details.update(
        coarse=[float(coarse[0]), float(coarse[1]), wrap_angle(coarse[2])],
        silhouette=[float(fitted[0]), float(fitted[1]), wrap_angle(fitted[2])],
        render_evals=evals + renders,
        residual_kind="RMS luma error (0-255) of the rendered frame",
    )
    return InitialState(
        robot=robot,
        objects={"block": Pose.planar(x, y, angle)},
        method="estimated",
        residual=rms,
        details=details,
        uncertainty={} if uncertainty is None else {"block": uncertainty},
    )
