"""Per-frame PushT block tracking for replays: a smooth silhouette model fitted by Levenberg-Marquardt.

gym-pusht draws the T on a 512 px canvas and shrinks it with cv2's bilinear resize, which reads the
canvas at one point per image pixel; the AV1 frames then blur those edges. So an image pixel shows
the T's coverage around its sample point, modelled here as a ramp one image pixel wide across every
edge: smooth in the pose (analytic Jacobian, a few Gauss-Newton steps) and evaluated only on the
pixels around the T. Each frame starts from the previous frame's pose; a fit that lands clearly worse
than the last one restarts from the mask's moments (both ways round) and an angle sweep.
Only numpy and OpenCV: cheap to import, and the heavy array work releases the GIL.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from replay_check.errors import EstimationError
from replay_check.sims.pusht_geometry import BLOCK_RGB, T_KEYPOINTS_LOCAL

ARENA = 512.0
COLOUR_RADIUS = 60.0  # RGB distance from the block's colours at which a pixel stops counting as block
# The block is a filled polygon inside a 2 px outline of its darker base colour.
OUTLINE_RGB = (119, 136, 153)
GROW = 1.0  # the outline widens the drawn silhouette by about 1 arena unit per side (fitted on renders)
MIN_BLOCK_FRACTION = 0.25  # fewer block pixels than this share of the T's area: no block in view
T_AREA = 6300.0
# The T as two rectangles in the body frame, grown by the outline: (centre x, centre y, half w, half h).
_BAR, _STEM = T_KEYPOINTS_LOCAL[:4], T_KEYPOINTS_LOCAL[4:]
RECTS = np.array([[(r[:, 0].min() + r[:, 0].max()) / 2, (r[:, 1].min() + r[:, 1].max()) / 2,
                   (r[:, 0].max() - r[:, 0].min()) / 2 + GROW, (r[:, 1].max() - r[:, 1].min()) / 2 + GROW]
                  for r in (_BAR, _STEM)])
CORNERS = np.array([[cx + sx * hw, cy + sy * hh] for cx, cy, hw, hh in RECTS
                    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
# Area centroid and second moments of the (ungrown) T in the body frame.
_CORNER_LIST = [(float(x), float(y)) for x, y in CORNERS]
_RECT_X, _RECT_Y, _HALF_W, _HALF_H = (RECTS[:, i].reshape(2, 1, 1) for i in range(4))
T_CENTROID_LOCAL = np.array([0.0, (3600 * 15 + 2700 * 75) / 6300])
REFIT_FACTOR, REFIT_SLACK = 1.5, 1e-3  # a warm fit costing more than 1.5x the last one (+ slack) restarts
MAX_ITERATIONS = 30
STEP_TOL, STEP_TOL_ANGLE = 0.05, 5e-4  # arena units, rad: converged
_CHANNEL_SUM = np.ones((1, 3), np.float32)


def blockness(frame: np.ndarray) -> np.ndarray:
    """Per-pixel likelihood (0..1) of showing the block, from the distance to its fill or outline colour."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    squared = None
    for colour in (BLOCK_RGB, OUTLINE_RGB):
        diff = cv2.absdiff(frame, (*colour, 0)).astype(np.float32)
        this = cv2.transform(diff * diff, _CHANNEL_SUM)  # sum of the three channels' squares
        squared = this if squared is None else np.minimum(squared, this)
    return np.clip(1.0 - np.sqrt(squared) / COLOUR_RADIUS, 0.0, 1.0)


@functools.lru_cache(maxsize=4)
def _samples(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where cv2's resize samples the 512 canvas for each output column and row: (j + 0.5) * scale - 0.5."""
    sample_x = (np.arange(width) + 0.5) * (ARENA / width) - 0.5
    sample_y = (np.arange(height) + 0.5) * (ARENA / height) - 0.5
    sample_x.flags.writeable = sample_y.flags.writeable = False
    return sample_x, sample_y


def visible(likelihood: np.ndarray) -> bool:
    """Whether enough block-coloured pixels are in view to fit the T."""
    height, width = likelihood.shape
    return float(likelihood.sum()) >= MIN_BLOCK_FRACTION * T_AREA * height * width / ARENA**2


class SilhouetteFit:
    """The squared difference between the modelled T and one frame's likelihood, and its minimiser."""

    def __init__(self, likelihood: np.ndarray):
        self.likelihood = np.asarray(likelihood, np.float64)
        self.height, self.width = self.likelihood.shape
        self.scale_x, self.scale_y = ARENA / self.width, ARENA / self.height  # arena units per image pixel
        self.sample_x, self.sample_y = _samples(self.height, self.width)
        self.ramp = (self.scale_x + self.scale_y) / 2  # edge width: one image pixel, in arena units
        flat = self.likelihood.reshape(-1)
        self.total = float(flat @ flat)

    def _window(self, pose: np.ndarray) -> tuple[slice, slice]:
        """The image pixels the T at `pose` can touch (its bounding box plus the edge ramp)."""
        c, s = math.cos(pose[2]), math.sin(pose[2])
        xs = [c * lx - s * ly for lx, ly in _CORNER_LIST]
        ys = [s * lx + c * ly for lx, ly in _CORNER_LIST]
        margin = self.ramp - 0.5
        x0 = max(math.floor((pose[0] + min(xs) - margin) / self.scale_x - 0.5), 0)
        y0 = max(math.floor((pose[1] + min(ys) - margin) / self.scale_y - 0.5), 0)
        x1 = min(math.ceil((pose[0] + max(xs) + margin + 1.0) / self.scale_x - 0.5) + 1, self.width)
        y1 = min(math.ceil((pose[1] + max(ys) + margin + 1.0) / self.scale_y - 0.5) + 1, self.height)
        return slice(y0, max(y1, y0)), slice(x0, max(x1, x0))

    def model(self, pose: np.ndarray, jacobian: bool = False):
        """(window, modelled coverage in it, d coverage / d (x, y, angle) or None)."""
        rows, cols = self._window(pose)
        qx = self.sample_x[cols][None, :] - pose[0]
        qy = self.sample_y[rows][:, None] - pose[1]
        c, s = np.cos(pose[2]), np.sin(pose[2])
        lx, ly = c * qx + s * qy, c * qy - s * qx  # the sample points in the body frame
        # Both rectangles at once (axis 0): coverage across each pair of edges is a ramp one pixel wide.
        dx, dy = lx - _RECT_X, ly - _RECT_Y
        ux = np.clip((_HALF_W - np.abs(dx)) / self.ramp + 0.5, 0.0, 1.0)
        uy = np.clip((_HALF_H - np.abs(dy)) / self.ramp + 0.5, 0.0, 1.0)
        cover = ux * uy
        stem = cover[1] > cover[0]  # the T is the union: the larger coverage counts
        model = np.where(stem, cover[1], cover[0])
        if not jacobian:
            return (rows, cols), model, None
        # d ux / d lx = -sign(dx) / ramp inside the ramp, 0 elsewhere (likewise uy)
        gx = np.where((ux > 0) & (ux < 1), -np.sign(dx) / self.ramp, 0.0) * uy
        gy = np.where((uy > 0) & (uy < 1), -np.sign(dy) / self.ramp, 0.0) * ux
        gx, gy = np.where(stem, gx[1], gx[0]), np.where(stem, gy[1], gy[0])
        # d lx / d (x, y, a) = (-c, -s, ly); d ly / d (x, y, a) = (s, -c, -lx)
        grad = np.stack([-c * gx + s * gy, -s * gx - c * gy, ly * gx - lx * gy], axis=-1)
        return (rows, cols), model, grad

    def _evaluate(self, pose: np.ndarray):
        """(mean squared difference over the frame, residual, Jacobian) at `pose`."""
        window, model, grad = self.model(pose, jacobian=True)
        frame = self.likelihood[window]
        residual = (model - frame).reshape(-1)
        cost = (self.total + float(residual @ residual) - float((frame * frame).sum())) / self.likelihood.size
        return cost, residual, grad.reshape(-1, 3)

    def cost(self, pose: np.ndarray) -> float:
        """Mean squared difference over the whole frame (the model is 0 outside its window)."""
        window, model, _ = self.model(pose)
        frame = self.likelihood[window]
        inside = float(((model - frame) ** 2).sum()) - float((frame * frame).sum())
        return (self.total + inside) / self.likelihood.size

    def refine(self, start: np.ndarray) -> tuple[np.ndarray, float]:
        """Levenberg-Marquardt from `start`: (pose, cost)."""
        pose = np.asarray(start, np.float64).copy()
        cost, residual, jac = self._evaluate(pose)
        damping = 1e-3
        for _ in range(MAX_ITERATIONS):
            normal, gradient = jac.T @ jac, jac.T @ residual
            if not np.any(gradient):
                break
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-9), -gradient)
            if abs(step[0]) < STEP_TOL and abs(step[1]) < STEP_TOL and abs(step[2]) < STEP_TOL_ANGLE:
                break  # converged (or damped to a standstill)
            trial = pose + step
            trial_cost, trial_residual, trial_jac = self._evaluate(trial)
            if trial_cost >= cost:
                damping *= 4.0
                continue
            pose, cost, residual, jac = trial, trial_cost, trial_residual, trial_jac
            damping = max(damping / 3.0, 1e-6)
        return pose, cost

    def moment_poses(self) -> list[np.ndarray]:
        """Two poses (the T either way round) putting its centroid and long axis on the mask's."""
        weight = self.likelihood.sum()
        x = (self.sample_x + 0.5)[None, :] * np.ones((self.height, 1))
        y = (self.sample_y + 0.5)[:, None] * np.ones((1, self.width))
        mx, my = (self.likelihood * x).sum() / weight, (self.likelihood * y).sum() / weight
        cxx = (self.likelihood * (x - mx) ** 2).sum() / weight
        cyy = (self.likelihood * (y - my) ** 2).sum() / weight
        cxy = (self.likelihood * (x - mx) * (y - my)).sum() / weight
        _, vectors = np.linalg.eigh(np.array([[cxx, cxy], [cxy, cyy]]))
        vx, vy = vectors[:, 1]  # the stem's direction (the larger spread), body +y = (-sin a, cos a)
        poses = []
        for angle in (np.arctan2(-vx, vy), np.arctan2(vx, -vy)):
            c, s = np.cos(angle), np.sin(angle)
            origin = np.array([mx, my]) - np.array([[c, -s], [s, c]]) @ T_CENTROID_LOCAL
            poses.append(np.array([origin[0], origin[1], angle]))
        return poses

    def sweep_poses(self, step_deg: float = 10.0) -> list[np.ndarray]:
        """The T's centroid on the mask's at every `step_deg` angle (for masks the moments mislead)."""
        weight = self.likelihood.sum()
        mx = (self.likelihood.sum(axis=0) * (self.sample_x + 0.5)).sum() / weight
        my = (self.likelihood.sum(axis=1) * (self.sample_y + 0.5)).sum() / weight
        poses = []
        for angle in np.deg2rad(np.arange(-180.0, 180.0, step_deg)):
            c, s = np.cos(angle), np.sin(angle)
            origin = np.array([mx, my]) - np.array([[c, -s], [s, c]]) @ T_CENTROID_LOCAL
            poses.append(np.array([origin[0], origin[1], angle]))
        return poses

    def search(self) -> tuple[np.ndarray, float]:
        """The best pose from scratch: refine the moment poses and the best few of an angle sweep."""
        starts = self.moment_poses()
        ranked = sorted(self.sweep_poses(), key=self.cost)
        starts.extend(ranked[:2])
        fits = [self.refine(start) for start in starts]
        return min(fits, key=lambda fit: fit[1])


def wrap_angle(angle: float) -> float:
    """Angle in [-pi, pi)."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class BlockMeter:
    """Per-frame block measurement for replays, warm-started from the previous frame's fit.

    At 10 Hz the block moves a few pixels per frame and smoothly, so the last pose moved on by the
    last frame's motion is a few Gauss-Newton steps from this one; a fit clearly worse than the
    last one falls back to the search from scratch (a jump, or the block reappearing).
    Deterministic given the sequence of frames it is shown.
    """

    def __init__(self) -> None:
        self._last: np.ndarray | None = None  # the last frame's pose (angle unwrapped)
        self._before: np.ndarray | None = None  # the one before it, when that frame showed the block too
        self._last_cost = np.inf

    def _prediction(self) -> np.ndarray | None:
        """Where the block should be now: the last pose moved on by the last frame's motion."""
        if self._last is None or self._before is None:
            return self._last
        return 2.0 * self._last - self._before

    def measure(self, frame: np.ndarray) -> tuple[float, float, float] | None:
        """Block (x, y, angle) in arena units and radians; None when the frame shows no block."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise EstimationError(f"PushT frame has shape {frame.shape}; expected HxWx3 to find the block in")
        likelihood = blockness(frame)
        if not visible(likelihood):
            self._last = self._before = None
            return None
        fit = SilhouetteFit(likelihood)
        found = None
        start = self._prediction()
        if start is not None:
            found = fit.refine(start)
            if found[1] > REFIT_FACTOR * self._last_cost + REFIT_SLACK:
                found = None
        if found is None:
            found = fit.search()
        pose, self._last_cost = found
        self._before, self._last = self._last, pose
        return float(pose[0]), float(pose[1]), wrap_angle(pose[2])
