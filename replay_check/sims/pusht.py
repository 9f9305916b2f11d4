"""gym-pusht (pymunk) adapter: the T-pushing task at 10 Hz, block pose as the pymunk body origin.

gym-pusht's `step` with obs_type="state" renders nothing, so this adapter calls it and the physics
is gym-pusht's own (PD on the agent, 10 substeps of 10 ms). `restore` does not use its
`reset_to_state`, which sets the block position before the angle: pymunk rotates about the centre of
gravity (0, 45 in the body frame), so that order moves the block. We set the angle first.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from replay_check.errors import InputError, ProfileError
from replay_check.sims.base import InitialState, Pose

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from gym_pusht.envs.pusht import PushTEnv

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


class PushTAdapter:
    """gym-pusht's PushT env driven without its reset quirk, rendering at the dataset's size."""

    object_names: tuple[str, ...] = ("block",)

    def __init__(self, task: str = "pusht", cameras: dict[str, tuple[int, int]] | None = None):
        if task not in TASKS:
            raise ProfileError(f"unknown gym-pusht task {task!r}; expected one of {list(TASKS)}")
        self.task_name = task
        self.cameras = dict(cameras if cameras is not None else {"top": (96, 96)})
        self.camera_names = tuple(self.cameras)
        self.env = PushTEnv(obs_type="state", render_mode="rgb_array")
        self.env.reset(seed=0)
        self._coverage: float | None = None

    # -- state ------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """gym-pusht's own seeded reset (random agent and block), as the scripted policy records it."""
        self.env.reset(seed=seed)
        self._coverage = None

    def restore(self, initial: InitialState) -> None:
        robot = np.asarray(initial.robot, dtype=np.float64).reshape(-1)
        if robot.shape != (2,):
            raise InputError(f"PushT robot state has shape {robot.shape}; expected (2,) agent x, y")
        if "block" not in initial.objects:
            raise InputError(f"PushT initial state lacks the 'block' pose; got {sorted(initial.objects)}")
        block = initial.objects["block"]
        self.env._setup()  # a fresh pymunk space: no contact cache carried over from earlier steps
        self.set_pose(robot, (float(block.position[0]), float(block.position[1]), block.yaw))
        self._coverage = None

    def set_pose(self, agent: np.ndarray, block: tuple[float, float, float]) -> None:
        """Place agent and block (body origin) at rest, angle before position, without stepping physics."""
        env = self.env
        env.agent.position = (float(agent[0]), float(agent[1]))
        env.agent.velocity = (0.0, 0.0)
        env.block.angle = float(block[2])
        env.block.position = (float(block[0]), float(block[1]))
        env.block.velocity = (0.0, 0.0)
        env.block.angular_velocity = 0.0
        env.space.reindex_shapes_for_body(env.block)
        env.space.reindex_shapes_for_body(env.agent)
        self._coverage = None

    def step(self, action: np.ndarray) -> None:
        target = np.asarray(action, dtype=np.float64).reshape(-1)
        if target.shape != (2,):
            raise InputError(f"PushT action has shape {target.shape}; expected (2,) target x, y")
        _, _, _, _, info = self.env.step(target)
        self._coverage = float(info["coverage"])

    def state(self) -> np.ndarray:
        return np.array(self.env.agent.position, dtype=np.float64)

    def block_pose(self) -> tuple[float, float, float]:
        """Body-origin (x, y, raw unwrapped angle) of the block."""
        block = self.env.block
        return float(block.position[0]), float(block.position[1]), float(block.angle)

    def environment_state(self) -> np.ndarray:
        return keypoints_from_pose(*self.block_pose())

    def object_poses(self) -> dict[str, Pose]:
        return {"block": Pose.planar(*self.block_pose())}

    def objects_from_environment_state(self, env_state: np.ndarray) -> dict[str, Pose]:
        return {"block": Pose.planar(*pose_from_keypoints(env_state))}

    # -- images -----------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        """The observation image (no action marker) as gym-pusht draws it: 512 px canvas, resized."""
        if camera not in self.cameras:
            raise InputError(f"PushT camera {camera!r} is not set up; expected one of {list(self.cameras)}")
        return self.render_size(*self.cameras[camera])

    def render_size(self, height: int, width: int) -> np.ndarray:
        """The observation image at any size (the estimator renders at the recorded frame's size)."""
        image = self.env._get_img(self.env._draw(), width=width, height=height, render_action=False)
        return np.ascontiguousarray(image)

    # -- task -------------------------------------------------------------------------------
    def coverage(self) -> float:
        """Fraction of the goal T covered by the block (shapely polygons, as gym-pusht computes it)."""
        if self._coverage is None:
            self._coverage = float(self.env._get_coverage())
        return self._coverage

    def reward(self) -> float:
        return float(np.clip(self.coverage() / SUCCESS_COVERAGE, 0.0, 1.0))

    def success(self) -> bool:
        return self.coverage() > SUCCESS_COVERAGE

    def unstable(self) -> str | None:
        values = [*self.env.agent.position, *self.block_pose()]
        if not np.all(np.isfinite(values)):
            return f"non-finite PushT state {values}"
        return None

    def close(self) -> None:
        self.env.close()
