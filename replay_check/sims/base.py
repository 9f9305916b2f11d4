"""The small contract every simulator family implements, and the state types it exchanges.

Like Gymnasium's Env, the interface is tiny: restore a state, step an action, read back what a
dataset records (state vector, object poses, camera images, reward, success). Adapters own their
physics; callers never reach into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


def quat_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a wxyz quaternion (normalised first), by MuJoCo's own conversion."""
    import mujoco

    q = np.asarray(quaternion, dtype=np.float64)
    out = np.empty(9)
    mujoco.mju_quat2Mat(out, q / np.linalg.norm(q))
    return out.reshape(3, 3)


@dataclass(frozen=True)
class Pose:
    """A rigid pose in the simulator's world frame: position (m, or px for PushT) and wxyz quaternion."""

    position: np.ndarray
    quaternion: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))

    @classmethod
    def planar(cls, x: float, y: float, angle: float) -> Pose:
        """A pose in the plane, rotated by `angle` (rad) about +z."""
        half = 0.5 * angle
        return cls(np.array([x, y, 0.0]), np.array([np.cos(half), 0.0, 0.0, np.sin(half)]))

    @property
    def yaw(self) -> float:
        """Rotation about +z (rad), exact for planar poses."""
        w, x, y, z = self.quaternion
        return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))

    def to_dict(self) -> dict[str, list[float]]:
        return {"position": [float(v) for v in self.position], "quaternion": [float(v) for v in self.quaternion]}


@dataclass(frozen=True)
class InitialState:
    """The state an episode starts from, and how it was obtained.

    `robot` is in the dataset's observation.state layout. `method` is "environment_state" (read from
    the dataset) or "estimated" (recovered from camera frame 0); `residual` measures the estimate's fit
    (lower is better; None when read exactly) and `details` carries method-specific diagnostics.
    """

    robot: np.ndarray
    objects: dict[str, Pose]
    method: str
    residual: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SimAdapter(Protocol):
    """One simulator family (gym-aloha, gym-pusht) driven at the dataset's control rate."""

    object_names: tuple[str, ...]
    camera_names: tuple[str, ...]

    def restore(self, initial: InitialState) -> None:
        """Put the simulator exactly in `initial` (zero velocities, controls holding the robot state)."""

    def step(self, action: np.ndarray) -> None:
        """Advance one control step with a dataset-layout action."""

    def state(self) -> np.ndarray:
        """The robot state in the dataset's observation.state layout."""

    def environment_state(self) -> np.ndarray:
        """The object state as `record --env-state` stores it in observation.environment_state."""

    def object_poses(self) -> dict[str, Pose]:
        """Current pose of every task object, keyed by the profile's object names."""

    def objects_from_environment_state(self, env_state: np.ndarray) -> dict[str, Pose]:
        """Object poses from one recorded observation.environment_state row."""

    def render(self, camera: str) -> np.ndarray:
        """An HxWx3 uint8 image from `camera` at the size set for that camera."""

    def reward(self) -> float:
        """The task reward in the current state."""

    def success(self) -> bool:
        """Whether the task is solved in the current state."""

    def unstable(self) -> str | None:
        """A reason when the simulation blew up (NaN state, solver warnings), else None."""

    def close(self) -> None:
        """Release renderers and contexts."""
