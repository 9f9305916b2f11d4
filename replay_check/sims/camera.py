"""A pinhole model of a MuJoCo camera, read from the compiled model and the current pose (no mujoco import).

Estimators need to go from pixels to world points and back without rendering; MuJoCo cameras are
ideal pinholes (square pixels, principal point at the image centre, vertical field of view `fovy`),
so the model's fovy plus `data.cam_xpos` / `data.cam_xmat` after `mj_forward` say everything.
Pixel coordinates follow array indexing: u = column, v = row, the centre of pixel (row 0, column 0)
at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from replay_check.errors import EstimationError

# MuJoCo cameras look along their -z axis with +y up; the pinhole convention looks along +z with +y down.
_MUJOCO_TO_PINHOLE = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class PinholeCamera:
    """x_cam = R_world_to_cam @ x_world + t; pixel = K @ x_cam / z_cam."""

    K: np.ndarray
    R_world_to_cam: np.ndarray
    t: np.ndarray
    height: int
    width: int

    @classmethod
    def from_physics(cls, physics, camera: str, height: int, width: int) -> PinholeCamera:
        """The camera as rendered at height x width, in the physics' current (forwarded) state."""
        try:
            cam_id = physics.model.name2id(camera, "camera")
        except Exception as exc:  # dm_control raises its own KeyError subclass
            raise EstimationError(f"camera {camera!r} is not in the MuJoCo model") from exc
        fovy = np.deg2rad(float(physics.model.cam_fovy[cam_id]))
        focal = 0.5 * height / np.tan(0.5 * fovy)
        K = np.array([[focal, 0.0, 0.5 * (width - 1)], [0.0, focal, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])
        cam_to_world = np.asarray(physics.data.cam_xmat[cam_id], dtype=np.float64).reshape(3, 3)
        position = np.asarray(physics.data.cam_xpos[cam_id], dtype=np.float64)
        rotation = _MUJOCO_TO_PINHOLE @ cam_to_world.T
        return cls(K=K, R_world_to_cam=rotation, t=-rotation @ position, height=int(height), width=int(width))

    @cached_property
    def center(self) -> np.ndarray:
        """The optical centre in world coordinates (computed once: the per-frame meter back-projects every frame)."""
        center = -self.R_world_to_cam.T @ self.t
        center.flags.writeable = False
        return center

    @cached_property
    def _K_inverse_T(self) -> np.ndarray:
        inverse = np.linalg.inv(self.K).T
        inverse.flags.writeable = False
        return inverse

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) pixels (u right, v down); points behind the camera give NaN."""
        points = np.atleast_2d(np.asarray(points_world, dtype=np.float64))
        cam = points @ self.R_world_to_cam.T + self.t
        depth = cam[:, 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (cam @ self.K.T)[:, :2] / depth
        uv[depth[:, 0] <= 0] = np.nan
        return uv

    def backproject_to_plane(self, uv: np.ndarray, z: float) -> np.ndarray:
        """(N, 2) pixels -> (N, 3) world points where their rays meet the horizontal plane at height z."""
        uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        rays_cam = np.column_stack([uv, np.ones(len(uv))]) @ self._K_inverse_T
        rays = rays_cam @ self.R_world_to_cam  # rows: R^T @ ray
        origin = self.center
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = (z - origin[2]) / rays[:, 2]
        scale[~(scale > 0)] = np.nan  # parallel to the plane, or the plane is behind the camera
        return origin + scale[:, None] * rays
