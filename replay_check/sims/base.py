"""The small contract every simulator family implements, and the picklable types it exchanges.

An adapter owns its simulator; callers (the replay engine, estimators, a process proxy) never reach
into it. Every method takes and returns numpy arrays, plain Python values or the small frozen
dataclasses below, so the same protocol works in-process and across a process boundary (one round
trip per call; `step` returns everything a replay step needs in one go). The protocol:

- `restore(initial)`: the episode's initial state, at rest, controls holding the robot state.
- `step(action) -> SimObservation`: one control step with a dataset-layout action, then the new state,
  object poses, reward, success and blow-up reason. `observe()` returns the same without stepping.
- `render(camera) -> HxWx3 uint8` at the size the `SimSpec` set for that camera.
- `render_hypothesis(camera, robot_state, object_poses, size=None)`: the scene with the robot and
  objects at the given pose, rendered, after which the simulator is back in its previous state.
  Estimators render their candidate poses through this only.
- `camera_model(camera, height, width) -> PinholeCamera` and `geometry() -> SceneGeometry`: what an
  estimator needs to know about the scene without rendering (intrinsics/extrinsics, object boxes).
- `snapshot() -> 1-d float64` of the full simulator state; `render_snapshot(camera, snapshot)` renders
  that state (bit-identical to `render` there) and leaves the current state as it was.
- `set_robot_state(state, keep_velocity=False)`: move the robot joints to a dataset-layout state
  (zero joint velocity, or the simulated one with `keep_velocity`), objects untouched.
- `contacts() -> ((body_a, body_b), ...)` in contact now; `body_poses() -> (names, positions (N, 3),
  wxyz quaternions (N, 4))` with names stable over an episode.
- `close()`.

An adapter is built from a `SimSpec` by `replay_check.sims.make_adapter` through the family registry
(`replay_check.families`), in any process. Importing this package or an adapter module imports only
numpy, scipy, opencv and the simulator packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from replay_check.sims.camera import PinholeCamera


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
class ObjectUncertainty:
    """A calibrated 1-sigma of an estimated object pose, for drawing perturbed initial states.

    `position` holds one standard deviation per world axis (m, or px for PushT), `angle` the standard
    deviation of the rotation about +z (rad). A component the estimator does not fit (ALOHA's spawn
    height and orientation, fixed by the reset rule) is 0.
    """

    position: np.ndarray
    angle: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"position": [float(v) for v in self.position], "angle": float(self.angle)}


@dataclass(frozen=True)
class InitialState:
    """The state an episode starts from, and how it was obtained.

    `robot` is in the dataset's observation.state layout. `method` is "environment_state" (read from
    the dataset) or "estimated" (recovered from camera frame 0); `residual` measures the estimate's fit
    (lower is better; None when read exactly), `uncertainty` the estimate's per-object 1-sigma (empty
    when read exactly) and `details` carries method-specific diagnostics.
    """

    robot: np.ndarray
    objects: dict[str, Pose]
    method: str
    residual: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    uncertainty: dict[str, ObjectUncertainty] = field(default_factory=dict)


@dataclass(frozen=True)
class SimSpec:
    """Everything needed to build an adapter in any process: family, task, camera sizes, physics changes.

    `cameras` maps a simulator camera to the (height, width) it renders at. `physics` holds overrides
    applied after the model loads (e.g. {"timestep": 0.001}; each family says which keys it knows), and
    `render` changes that affect only images (e.g. {"light_scale": 0.5}).
    `module` names the module declaring the family, for families registered outside the package.
    """

    family: str
    task: str
    cameras: dict[str, tuple[int, int]] = field(default_factory=dict)
    physics: dict[str, float] = field(default_factory=dict)
    module: str | None = None
    render: dict[str, float] = field(default_factory=dict)  # renderer changes, e.g. {"light_scale": 0.5}


@dataclass(frozen=True)
class SimObservation:
    """What the simulator shows after a step: robot state (dataset layout), objects, task outcome."""

    state: np.ndarray
    objects: dict[str, Pose]
    environment_state: np.ndarray  # object state as `record --env-state` stores it
    reward: float
    success: bool
    unstable: str | None = None  # a reason when the simulation blew up (NaN state, solver error)


@dataclass(frozen=True)
class ObjectShape:
    """One task object's collision boxes in its body frame (non-box geoms as bounding cubes)."""

    name: str
    centers: np.ndarray  # (N, 3)
    rotations: np.ndarray  # (N, 3, 3) geom frame -> body frame
    half_sizes: np.ndarray  # (N, 3)
    rgba: np.ndarray  # (N, 4)


@dataclass(frozen=True)
class SceneGeometry:
    """What estimators know about a scene without rendering: object shapes and the support height."""

    objects: tuple[ObjectShape, ...]
    support_z: float = 0.0  # height of the surface objects rest on (table top)


@runtime_checkable
class SimAdapter(Protocol):
    """One simulator family driven at the dataset's control rate (see the module docstring)."""

    object_names: tuple[str, ...]
    camera_names: tuple[str, ...]

    def restore(self, initial: InitialState) -> None: ...

    def step(self, action: np.ndarray) -> SimObservation: ...

    def observe(self) -> SimObservation: ...

    def render(self, camera: str) -> np.ndarray: ...

    def render_hypothesis(self, camera: str, robot_state: np.ndarray, object_poses: dict[str, Pose],
                          size: tuple[int, int] | None = None) -> np.ndarray: ...

    def camera_model(self, camera: str, height: int, width: int) -> PinholeCamera: ...

    def geometry(self) -> SceneGeometry: ...

    def snapshot(self) -> np.ndarray: ...

    def render_snapshot(self, camera: str, snapshot: np.ndarray) -> np.ndarray: ...

    def set_robot_state(self, state: np.ndarray, *, keep_velocity: bool = False) -> None: ...

    def contacts(self) -> tuple[tuple[str, str], ...]: ...

    def body_poses(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]: ...

    def close(self) -> None: ...
