"""gym-pusht (pymunk) adapter: the T-pushing task at 10 Hz, block pose as the pymunk body origin.

The physics is gym-pusht's own (PD on the agent, 10 substeps of 10 ms): `advance` runs env.step's
substep loop itself, without the coverage, observation and info env.step computes after it. `restore` does not use its
`reset_to_state`, which sets the block position before the angle: pymunk rotates about the centre of
gravity (0, 45 in the body frame), so that order moves the block. We set the angle first.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from replay_check.errors import InputError, ProfileError
from replay_check.sims.base import InitialState, Pose, SceneGeometry, SimObservation, SimSpec
from replay_check.sims.pusht_geometry import (  # noqa: F401  (re-exported for the family's modules)
    BLOCK_RGB,
    GOAL_POSE,
    GOAL_RGB,
    SUCCESS_COVERAGE,
    T_KEYPOINTS_LOCAL,
    TASKS,
    keypoints_from_pose,
    pose_from_keypoints,
    rotation,
)

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def _import_pygame() -> None:
    """pygame without setuptools' pkg_resources, which it imports only for resource lookups PushT never makes
    (it has stubs for when that import fails): ~0.1 s of every render worker's start, and a deprecation warning."""
    if "pygame" in sys.modules or "pkg_resources" in sys.modules:
        return
    sys.modules["pkg_resources"] = None  # makes `import pkg_resources` raise ImportError
    try:
        import pygame  # noqa: F401
    finally:
        del sys.modules["pkg_resources"]


_import_pygame()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import cv2
    import gym_pusht.envs.pusht as _pusht_module
    import pygame
    import pymunk
    from gym_pusht.envs.pusht import PushTEnv


STATE_SIZE = 10  # snapshot: agent x, y, vx, vy; block x, y, angle, vx, vy, angular velocity


def _image(screen, height: int, width: int) -> np.ndarray:
    """gym-pusht's `_get_img` without an action marker, bit for bit: the canvas's RGB, resized (bilinear) by cv2.

    gym-pusht copies the canvas through a strided pixels3d view and a transpose (~0.5 ms of a 2 ms
    render); pygame's row-major RGB bytes are the same pixels in the order cv2 wants.
    """
    canvas = np.frombuffer(pygame.image.tobytes(screen, "RGB"), np.uint8)
    canvas = canvas.reshape(screen.get_height(), screen.get_width(), 3)
    return np.ascontiguousarray(cv2.resize(canvas, (width, height)))


class _SegmentRecorder(pymunk.SpaceDebugDrawOptions):
    """Records the contact segments pymunk's debug draw adds over the scene (its last drawing pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.flags = pymunk.SpaceDebugDrawOptions.DRAW_COLLISION_POINTS
        self.segments: list[float] = []

    def draw_segment(self, a, b, color) -> None:
        self.segments.extend((a[0], a[1], b[0], b[1]))


class _WithoutContacts:
    """gym-pusht's drawing options with the contact pass off (render_snapshot draws stored contacts)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, surface):
        options = self.base(surface)
        options.flags = pymunk.SpaceDebugDrawOptions.DRAW_SHAPES | pymunk.SpaceDebugDrawOptions.DRAW_CONSTRAINTS
        return options


class PushTAdapter:
    """gym-pusht's PushT env driven without its reset quirk, rendering at the dataset's size."""

    object_names: tuple[str, ...] = ("block",)

    def __init__(self, task: str = "pusht", cameras: dict[str, tuple[int, int]] | None = None,
                 physics: dict[str, float] | None = None):
        if physics:
            raise ProfileError(f"PushT takes no physics overrides; got {sorted(physics)}")
        if task not in TASKS:
            raise ProfileError(f"unknown gym-pusht task {task!r}; expected one of {list(TASKS)}")
        self.task_name = task
        self.cameras = dict(cameras if cameras is not None else {"top": (96, 96)})
        self.camera_names = tuple(self.cameras)
        self.env = PushTEnv(obs_type="state", render_mode="rgb_array")
        self.env.reset(seed=0)
        self._substeps = int(1 / (self.env.dt * self.env.control_hz))  # as gym-pusht's step counts them
        self._coverage: float | None = None
        self._goal_cache: tuple | None = None  # see _goal

    @classmethod
    def from_spec(cls, spec: SimSpec) -> PushTAdapter:
        return cls(spec.task, dict(spec.cameras) if spec.cameras else None, dict(spec.physics))

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

    def step(self, action: np.ndarray) -> SimObservation:
        self.advance(action)
        return self.observe()

    def advance(self, action: np.ndarray) -> None:
        """One control step without reading anything back (the scripted policy's inner loop)."""
        target = np.asarray(action, dtype=np.float64).reshape(-1)
        if target.shape != (2,):
            raise InputError(f"PushT action has shape {target.shape}; expected (2,) target x, y")
        env = self.env
        # gym-pusht's env.step substeps, without the coverage, observation and info it then computes and
        # this adapter drops: the same float operations in the same order (PD on the agent, then a pymunk
        # step), so the trajectory is env.step's bit for bit (tests/test_sims_pusht.py).
        env.n_contact_points = 0
        env._last_action = target
        agent, space, dt = env.agent, env.space, env.dt
        tx, ty = float(target[0]), float(target[1])
        for _ in range(self._substeps):
            (px, py), (vx, vy) = agent.position, agent.velocity
            ax = env.k_p * (tx - px) + env.k_v * (0 - vx)
            ay = env.k_p * (ty - py) + env.k_v * (0 - vy)
            agent.velocity = (vx + ax * dt, vy + ay * dt)
            space.step(dt)
        self._coverage = None  # computed on demand, in a fixed shape order (see coverage)

    def observe(self) -> SimObservation:
        return SimObservation(state=self.state(), objects=self.object_poses(),
                              environment_state=self.environment_state(), reward=self.reward(),
                              success=self.success(), unstable=self.unstable())

    def set_robot_state(self, state: np.ndarray, *, keep_velocity: bool = False) -> None:
        agent = np.asarray(state, dtype=np.float64).reshape(-1)
        self.env.agent.position = (float(agent[0]), float(agent[1]))
        if not keep_velocity:
            self.env.agent.velocity = (0.0, 0.0)
        self.env.space.reindex_shapes_for_body(self.env.agent)
        self._coverage = None

    def snapshot(self) -> np.ndarray:
        """Agent and block state (STATE_SIZE values), then the contact segments gym-pusht's image shows.

        pymunk's debug draw marks the last step's contacts; they are not state that can be set, so the
        snapshot carries them (a.x, a.y, b.x, b.y each) for `render_snapshot` to draw.
        """
        agent, block = self.env.agent, self.env.block
        recorder = _SegmentRecorder()
        self.env.space.debug_draw(recorder)
        state = [*agent.position, *agent.velocity, *block.position, block.angle, *block.velocity,
                 block.angular_velocity]
        return np.array(state + recorder.segments, dtype=np.float64)

    def _load_snapshot(self, snapshot: np.ndarray) -> np.ndarray:
        """Set the state part of a snapshot; returns its contact segments as (N, 4)."""
        snap = np.asarray(snapshot, dtype=np.float64).reshape(-1)
        if snap.size < STATE_SIZE or (snap.size - STATE_SIZE) % 4:
            raise ValueError(f"PushT snapshot has shape {snap.shape}. Expected ({STATE_SIZE} + 4k,).")
        self.set_pose(snap[0:2], (float(snap[4]), float(snap[5]), float(snap[6])))
        self.env.agent.velocity = (float(snap[2]), float(snap[3]))
        self.env.block.velocity = (float(snap[7]), float(snap[8]))
        self.env.block.angular_velocity = float(snap[9])
        return snap[STATE_SIZE:].reshape(-1, 4)

    def render_snapshot(self, camera: str, snapshot: np.ndarray) -> np.ndarray:
        """The image `render` gave in the snapshot's state, contact marks included."""
        if camera not in self.cameras:
            raise InputError(f"PushT camera {camera!r} is not set up; expected one of {list(self.cameras)}")
        current, coverage = self.snapshot(), self._coverage
        base = _pusht_module.DrawOptions
        try:
            segments = self._load_snapshot(snapshot)
            _pusht_module.DrawOptions = _WithoutContacts(base)
            screen = self.env._draw()
            _pusht_module.DrawOptions = base
            marks = base(screen)
            for ax, ay, bx, by in segments:
                marks.draw_segment(pymunk.Vec2d(ax, ay), pymunk.Vec2d(bx, by), marks.collision_point_color)
            height, width = self.cameras[camera]
            return _image(screen, height, width)
        finally:
            _pusht_module.DrawOptions = base
            self._load_snapshot(current)
            self._coverage = coverage

    def contacts(self) -> tuple[tuple[str, str], ...]:
        return ()

    def body_poses(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """agent and block in arena units (z = 0), wxyz quaternions about +z."""
        block = Pose.planar(*self.block_pose())
        agent = self.state()
        positions = np.array([[agent[0], agent[1], 0.0], block.position])
        quaternions = np.array([[1.0, 0.0, 0.0, 0.0], block.quaternion])
        return ("agent", "block"), positions, quaternions

    def geometry(self) -> SceneGeometry:
        return SceneGeometry(objects=())

    def camera_model(self, camera: str, height: int, width: int):
        raise InputError("PushT renders a 2-D canvas; it has no pinhole camera")

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

    # -- images -----------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        """The observation image (no action marker) as gym-pusht draws it: 512 px canvas, resized."""
        if camera not in self.cameras:
            raise InputError(f"PushT camera {camera!r} is not set up; expected one of {list(self.cameras)}")
        return self._render_size(*self.cameras[camera])

    def render_hypothesis(self, camera: str, robot_state: np.ndarray, object_poses: dict[str, Pose],
                          size: tuple[int, int] | None = None) -> np.ndarray:
        """The scene with agent and block at that pose, at `size` (default: the camera's); then back."""
        height, width = size or self.cameras.get(camera, (96, 96))
        block = object_poses["block"]
        current, coverage = self.snapshot(), self._coverage
        try:
            self.set_pose(robot_state, (float(block.position[0]), float(block.position[1]), block.yaw))
            return self._render_size(height, width)
        finally:
            self._load_snapshot(current)
            self._coverage = coverage

    def _render_size(self, height: int, width: int) -> np.ndarray:
        return _image(self.env._draw(), height, width)

    # -- task -------------------------------------------------------------------------------
    def coverage(self) -> float:
        """Fraction of the goal T covered by the block (shapely polygons, as gym-pusht computes it).

        gym-pusht's `_get_coverage` walks `block.shapes`, a set ordered by object address, and the
        intersection area's last bits depend on that order: runs of one episode differed in the
        reward column. The same computation over the shapes in a fixed order is reproducible.
        """
        if self._coverage is None:
            from gym_pusht.envs.pusht import pymunk_to_shapely

            env = self.env
            shapes, goal, goal_area = self._goal()
            block = pymunk_to_shapely(env.block, shapes)
            self._coverage = float(goal.intersection(block).area / goal_area)
        return self._coverage

    def _goal(self):
        """(the block's shapes in a fixed order, the goal T as shapely polygons, its area), built once per block.

        The goal does not move: the same polygons every step, so the same coverage bit for bit, for
        half the cost (gym-pusht rebuilds a pymunk body and the polygons each time).
        """
        from gym_pusht.envs.pusht import pymunk_to_shapely

        env = self.env
        key = (env.block, tuple(env.goal_pose))
        if self._goal_cache is None or self._goal_cache[0] != key:
            shapes = sorted(env.block.shapes, key=lambda shape: [tuple(v) for v in shape.get_vertices()])
            goal = pymunk_to_shapely(env.get_goal_pose_body(env.goal_pose), shapes)
            self._goal_cache = (key, (shapes, goal, goal.area))
        return self._goal_cache[1]

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
