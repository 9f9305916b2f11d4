"""PushT's block geometry as pure numpy: T keypoints <-> body-origin pose, goal and colours.

Separate from the adapter so the family declaration, the overlay and estimators can use it without
importing gym-pusht (pygame, pymunk).
"""

from __future__ import annotations

import numpy as np

from replay_check.errors import InputError

# The T's corners in the block body frame, in the order gym-pusht's get_keypoints yields them
# (bar: 0-3, stem: 4-7); the body origin is the middle of the bar's top edge.
T_KEYPOINTS_LOCAL = np.array(
    [[-60, 0], [60, 0], [60, 30], [-60, 30], [-15, 30], [15, 30], [15, 120], [-15, 120]], dtype=np.float64
)
GOAL_POSE = (256.0, 256.0, np.pi / 4)  # gym-pusht's fixed goal: x, y, angle
SUCCESS_COVERAGE = 0.95
# Fill colours as gym-pusht draws them (pygame colour x 1.2 inside a 2 px outline of the base colour).
BLOCK_RGB = (143, 163, 184)  # LightSlateGray, lightened
GOAL_RGB = (144, 238, 144)  # LightGreen
TASKS = ("pusht",)


def rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def keypoints_from_pose(x: float, y: float, angle: float) -> np.ndarray:
    """The 16 numbers of observation.environment_state for a block at body-origin pose (x, y, angle)."""
    points = T_KEYPOINTS_LOCAL @ rotation(angle).T + np.array([x, y])
    return points.reshape(16)


def pose_from_keypoints(kp: np.ndarray) -> tuple[float, float, float]:
    """Body-origin (x, y, angle) best fitting 8 keypoints (least squares, exact for exact keypoints).

    The angle is in (-pi, pi]; recorded keypoints (float32) give ~1e-5 px accuracy.
    """
    points = np.asarray(kp, dtype=np.float64).reshape(-1)
    if points.shape != (16,) or not np.all(np.isfinite(points)):
        raise InputError(f"PushT environment_state must be 16 finite numbers, got shape {np.shape(kp)}")
    points = points.reshape(8, 2)
    local_mean, world_mean = T_KEYPOINTS_LOCAL.mean(0), points.mean(0)
    a, b = T_KEYPOINTS_LOCAL - local_mean, points - world_mean
    # 2-D Procrustes: the angle maximising sum <R a_i, b_i>.
    cross = np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    dot = np.sum(a * b)
    angle = float(np.arctan2(cross, dot))
    origin = world_mean - rotation(angle) @ local_mean
    return float(origin[0]), float(origin[1]), angle
