"""gym-aloha (MuJoCo) adapter: drives the joint-space insertion / transfer-cube tasks directly.

gym-aloha's `env.step` renders three 480x640 cameras every step; replay only needs physics plus the
cameras a dataset has, so this adapter owns a dm_control Physics and the gym-aloha Task and steps
them the way `dm_control.rl.control.Environment` does (task.before_step, physics.step(n_sub_steps)).

The Task is imported when the adapter first steps or scores: gym-aloha's task module imports
dm_control.suite and with it scipy.ndimage (~0.3 s and ~25 MB), which a render worker never needs.
Each camera keeps one dm_control `Camera` (its MjvScene and pixel buffer) per image size instead of
`physics.render` building and freeing one per frame; the pixels are the same, bit for bit.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import mujoco
import numpy as np
from dm_control.mujoco import engine, wrapper
from dm_control.rl.control import PhysicsError
from gym_aloha import constants

from replay_check.errors import EstimationError, ProfileError
from replay_check.sims.base import InitialState, ObjectShape, Pose, SceneGeometry, SimObservation, SimSpec
from replay_check.sims.camera import PinholeCamera

# Model file, gym_aloha.tasks.sim class name and objects (free-joint qpos after the 16 arm/finger
# joints, in environment_state order).
TASKS = {
    "insertion": ("bimanual_viperx_insertion.xml", "InsertionTask", ("peg", "socket")),
    "transfer_cube": ("bimanual_viperx_transfer_cube.xml", "TransferCubeTask", ("cube",)),
}
MAX_CAMERAS = 8  # cached (camera, height, width) renderers per adapter
ARM_QPOS = 16
LEFT_FINGER, RIGHT_FINGER = 6, 14  # qpos index of each side's first finger joint
LEFT_GRIPPER, RIGHT_GRIPPER = 6, 13  # index of each side's gripper in the 14-d dataset layout


@functools.cache
def _parsed_model(xml: str) -> wrapper.MjModel:
    """The task's model as parsed from its XML, once per process; adapters build their Physics on a copy."""
    return wrapper.MjModel.from_xml_path(str(constants.ASSETS_DIR / xml))


def load_model(task: str) -> mujoco.MjModel:
    """The task's MjModel alone (no Physics, no renderer), for geometry and kinematics elsewhere."""
    if task not in TASKS:
        raise ProfileError(f"unknown gym-aloha task {task!r}; expected one of {sorted(TASKS)}")
    return mujoco.MjModel.from_xml_path(str(constants.ASSETS_DIR / TASKS[task][0]))


def gripper_to_finger(normalized: float) -> float:
    """Dataset gripper value (0 closed, 1 open) -> finger joint position (m)."""
    return float(constants.unnormalize_puppet_gripper_position(normalized))


def finger_to_gripper(finger_qpos: float) -> float:
    """Finger joint position (m) -> dataset gripper value (0 closed, 1 open)."""
    return float(constants.normalize_puppet_gripper_position(finger_qpos))


def robot_state_to_qpos(state: np.ndarray) -> np.ndarray:
    """14-d dataset state -> the 16 arm/finger qpos (both fingers of a gripper mirror each other)."""
    state = np.asarray(state, dtype=np.float64)
    if state.shape != (14,):
        raise ValueError(f"ALOHA robot state has shape {state.shape}. Expected (14,).")
    left, right = gripper_to_finger(state[LEFT_GRIPPER]), gripper_to_finger(state[RIGHT_GRIPPER])
    return np.concatenate([state[0:6], [left, -left], state[7:13], [right, -right]])


def qpos_to_robot_state(qpos: np.ndarray) -> np.ndarray:
    """The 16 arm/finger qpos -> 14-d dataset state (first finger joint per side)."""
    return np.concatenate(
        [qpos[0:6], [finger_to_gripper(qpos[LEFT_FINGER])], qpos[8:14], [finger_to_gripper(qpos[RIGHT_FINGER])]]
    )


class _ContactView:
    """The slice of a Physics that gym-aloha's `get_reward` reads (contacts and geom names), made cheap.

    Its reward logic is used as is; only dm_control's per-contact accessors, which cost as much as the
    reward itself, are replaced by cached geom names and one read of the contact arrays.
    """

    def __init__(self, physics: engine.Physics):
        model = physics.model.ptr
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, i) for i in range(model.ngeom)]
        self._model = SimpleNamespace(id2name=lambda index, kind: names[index])
        self._physics = physics

    def snapshot(self) -> SimpleNamespace:
        """The current contacts, read once, behind the attribute names gym-aloha uses."""
        raw = self._physics.data.ptr
        n = raw.ncon
        pairs = zip(raw.contact.geom1[:n].tolist(), raw.contact.geom2[:n].tolist(), strict=True)
        contacts = [SimpleNamespace(geom1=a, geom2=b) for a, b in pairs]
        return SimpleNamespace(data=SimpleNamespace(ncon=n, contact=contacts), model=self._model)


PHYSICS_KEYS = ("timestep", "friction_scale")
RENDER_KEYS = ("light_scale",)


def _apply_physics(model, overrides: dict[str, float]) -> None:
    """SimSpec.physics: `timestep` (s per substep; the control step stays DT) and `friction_scale`."""
    for key, value in overrides.items():
        if key == "timestep":
            if not value > 0:
                raise ProfileError(f"physics timestep must be > 0, got {value!r}")
            model.opt.timestep = float(value)
        elif key == "friction_scale":
            model.geom_friction[:, 0] *= float(value)
        else:
            raise ProfileError(f"unknown ALOHA physics override {key!r}; known: {', '.join(PHYSICS_KEYS)}")


def _apply_render(model, overrides: dict[str, float]) -> None:
    """SimSpec.render: `light_scale` multiplies every light's diffuse and specular colour."""
    for key, value in overrides.items():
        if key == "light_scale":
            if not value >= 0:
                raise ProfileError(f"render light_scale must be >= 0, got {value!r}")
            model.light_diffuse[:] *= float(value)
            model.light_specular[:] *= float(value)
        else:
            raise ProfileError(f"unknown ALOHA render override {key!r}; known: {', '.join(RENDER_KEYS)}")


class AlohaAdapter:
    """Joint-space ALOHA task on today's MuJoCo, rendering only the requested cameras."""

    def __init__(self, task: str, cameras: dict[str, tuple[int, int]] | None = None,
                 physics: dict[str, float] | None = None, render: dict[str, float] | None = None):
        if task not in TASKS:
            raise ProfileError(f"unknown gym-aloha task {task!r}; expected one of {sorted(TASKS)}")
        xml, self._task_class, objects = TASKS[task]
        self.task_name = task
        # a copy: the same model as parsing the XML again (~10 ms), and overrides below change this copy only
        self.physics = engine.Physics.from_model(_parsed_model(xml).copy())
        _apply_physics(self.physics.model, dict(physics or {}))
        _apply_render(self.physics.model, dict(render or {}))
        self._task = None
        self._renderers: dict[tuple[str, int, int], engine.Camera] = {}
        self.object_names = objects
        self.cameras = dict(cameras or {})
        self.camera_names = tuple(self.cameras)
        self.n_sub_steps = max(1, int(round(constants.DT / self.physics.model.opt.timestep)))
        model = self.physics.model.ptr
        self._body_names = tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) or f"body_{i}"
                                 for i in range(model.nbody))
        self._geom_owner = [self._body_names[b] for b in np.asarray(model.geom_bodyid).tolist()]  # geom -> body name
        self._unstable: str | None = None
        self._contacts = _ContactView(self.physics)
        self._reward: float | None = None  # cached until the state changes

    @classmethod
    def from_spec(cls, spec: SimSpec) -> AlohaAdapter:
        return cls(spec.task, dict(spec.cameras), dict(spec.physics), dict(spec.render))

    @property
    def task(self):
        """gym-aloha's Task (before_step, get_reward, max_reward), imported and built on first use."""
        if self._task is None:
            from gym_aloha.tasks import sim

            self._task = getattr(sim, self._task_class)()
        return self._task

    # -- state ------------------------------------------------------------------------------
    def restore(self, initial: InitialState) -> None:
        self._reset_to(initial.robot, initial.objects)
        self._unstable = None
        self._reward = None

    def _reset_to(self, robot: np.ndarray, objects: dict[str, Pose]) -> None:
        """Reset the physics with the robot and objects at the given pose (at rest, controls holding)."""
        arm = robot_state_to_qpos(robot)
        missing = set(self.object_names) - set(objects)
        if missing:
            raise ValueError(f"initial state lacks object poses for {sorted(missing)}")
        with self.physics.reset_context():
            self.physics.data.qpos[:ARM_QPOS] = arm
            self.physics.data.ctrl[:] = arm
            for i, name in enumerate(self.object_names):
                pose = objects[name]
                start = ARM_QPOS + 7 * i
                self.physics.data.qpos[start : start + 3] = pose.position
                self.physics.data.qpos[start + 3 : start + 7] = pose.quaternion

    def step(self, action: np.ndarray) -> SimObservation:
        self.advance(action)
        return self.observe()

    def advance(self, action: np.ndarray) -> None:
        """One control step without reading anything back (the scripted policy's inner loop)."""
        if self._unstable:
            return
        self._reward = None
        self.task.before_step(np.asarray(action, dtype=np.float64), self.physics)
        try:
            self.physics.step(self.n_sub_steps)
        except PhysicsError as exc:
            self._unstable = f"physics error: {exc}"
            return
        if not np.all(np.isfinite(self.physics.data.qpos)):
            self._unstable = "non-finite joint positions"

    def observe(self) -> SimObservation:
        return SimObservation(state=self.state(), objects=self.object_poses(),
                              environment_state=self.environment_state(), reward=self.reward(),
                              success=self.success(), unstable=self.unstable())

    def set_robot_state(self, state: np.ndarray, *, keep_velocity: bool = False) -> None:
        """Robot joints to `state`; `keep_velocity` keeps the simulated joint velocities and each
        gripper's finger asymmetry (a squeezed object pushes the two fingers apart unevenly), as a
        re-synced replay needs: only what the dataset records is set back."""
        arm = robot_state_to_qpos(state)
        data = self.physics.data
        if keep_velocity:
            for finger in (LEFT_FINGER, RIGHT_FINGER):
                delta = arm[finger] - data.qpos[finger]
                arm[finger + 1] = data.qpos[finger + 1] - delta
        else:
            data.qvel[:ARM_QPOS] = 0.0
        data.qpos[:ARM_QPOS] = arm
        data.ctrl[:] = arm
        self.physics.forward()
        self._reward = None

    def state(self) -> np.ndarray:
        return qpos_to_robot_state(self.physics.data.qpos)

    def environment_state(self) -> np.ndarray:
        return self.physics.data.qpos[ARM_QPOS:].copy()

    def object_poses(self) -> dict[str, Pose]:
        qpos = self.physics.data.qpos
        poses = {}
        for i, name in enumerate(self.object_names):
            start = ARM_QPOS + 7 * i
            poses[name] = Pose(qpos[start : start + 3].copy(), qpos[start + 3 : start + 7].copy())
        return poses

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self) -> np.ndarray:
        """time, qpos, qvel, act, ctrl, qacc_warmstart, mocap_pos, mocap_quat as one float64 vector."""
        d = self.physics.data
        parts = [np.array([d.time]), d.qpos, d.qvel, d.act, d.ctrl, d.qacc_warmstart,
                 np.ravel(d.mocap_pos), np.ravel(d.mocap_quat)]
        return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])

    def _load_snapshot(self, snapshot: np.ndarray) -> None:
        snap = np.asarray(snapshot, dtype=np.float64).ravel()
        d = self.physics.data
        expected = self.snapshot().size
        if snap.shape != (expected,):
            raise ValueError(f"ALOHA snapshot has shape {snap.shape}. Expected ({expected},).")
        d.time = snap[0]
        at = 1
        for target in (d.qpos, d.qvel, d.act, d.ctrl, d.qacc_warmstart, d.mocap_pos, d.mocap_quat):
            n = target.size
            target.reshape(-1)[:] = snap[at : at + n]
            at += n
        self.physics.forward()

    def render_snapshot(self, camera: str, snapshot: np.ndarray) -> np.ndarray:
        current = self.snapshot()
        try:
            self._load_snapshot(snapshot)
            return self.render(camera)
        finally:
            self._load_snapshot(current)

    # -- observation ----------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        height, width = self.cameras.get(camera, (480, 640))
        return self._render(camera, height, width)

    def _render(self, camera: str, height: int, width: int) -> np.ndarray:
        """What `physics.render(height, width, camera_id=camera)` returns, from a kept Camera (a copy)."""
        key = (camera, height, width)
        renderer = self._renderers.get(key)
        if renderer is None:
            if len(self._renderers) >= MAX_CAMERAS:
                oldest = next(iter(self._renderers))
                self._renderers.pop(oldest).scene.free()
            renderer = engine.Camera(self.physics, height=height, width=width, camera_id=camera)
            self._renderers[key] = renderer
        return renderer.render().copy()  # the render is a view of the Camera's own buffer

    def render_hypothesis(self, camera: str, robot_state: np.ndarray, object_poses: dict[str, Pose],
                          size: tuple[int, int] | None = None) -> np.ndarray:
        """The scene reset to that robot state and those object poses, rendered; then back as it was."""
        height, width = size or self.cameras.get(camera, (480, 640))
        current, reward, unstable = self.snapshot(), self._reward, self._unstable
        try:
            self._reset_to(robot_state, object_poses)
            return self._render(camera, height, width)
        finally:
            self._load_snapshot(current)
            self._reward, self._unstable = reward, unstable

    def camera_model(self, camera: str, height: int, width: int) -> PinholeCamera:
        self.physics.forward()  # derived quantities only: camera poses
        return PinholeCamera.from_physics(self.physics, camera, height, width)

    def geometry(self) -> SceneGeometry:
        """Each object's boxes from its free joint's body, and the table top (0 without a 'table' geom)."""
        model = self.physics.model
        shapes = []
        for i, name in enumerate(self.object_names):
            start = ARM_QPOS + 7 * i
            joint = np.flatnonzero((np.asarray(model.jnt_qposadr) == start) & (np.asarray(model.jnt_type) == 0))
            if joint.size != 1:
                raise EstimationError(f"object {name!r}: no free joint at qpos {start} in the gym-aloha model")
            shapes.append(_object_shape(model, name, int(model.jnt_bodyid[joint[0]])))
        self.physics.forward()
        return SceneGeometry(objects=tuple(shapes), support_z=_table_top_z(self.physics))

    def contacts(self) -> tuple[tuple[str, str], ...]:
        raw = self.physics.data.ptr
        n = raw.ncon
        owner, contact = self._geom_owner, raw.contact
        return tuple((owner[a], owner[b]) for a, b in zip(contact.geom1[:n].tolist(), contact.geom2[:n].tolist(),
                                                          strict=True))

    def body_poses(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """Every body but the world: names, positions and wxyz quaternions after the last forward pass."""
        data = self.physics.data
        return self._body_names[1:], np.array(data.xpos[1:], dtype=np.float64), np.array(data.xquat[1:],
                                                                                         dtype=np.float64)

    def reward(self) -> float:
        if self._reward is None:
            self._reward = float(self.task.get_reward(self._contacts.snapshot()))
        return self._reward

    def success(self) -> bool:
        return self.reward() >= self.task.max_reward

    def unstable(self) -> str | None:
        return self._unstable

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.scene.free()
        self._renderers.clear()
        self.physics.free()


def _object_shape(model, name: str, body_id: int) -> ObjectShape:
    """Boxes of every geom of a body (spheres and other shapes as cubes of their bounding radius)."""
    from replay_check.sims.base import quat_to_matrix

    centers, rotations, halves, colours = [], [], [], []
    for gid in np.flatnonzero(np.asarray(model.geom_bodyid) == body_id):
        rotations.append(quat_to_matrix(np.asarray(model.geom_quat[gid], dtype=np.float64)))
        if int(model.geom_type[gid]) == 6:  # mjGEOM_BOX
            halves.append(np.asarray(model.geom_size[gid], dtype=np.float64))
        else:
            halves.append(np.full(3, float(model.geom_rbound[gid])))
        centers.append(np.asarray(model.geom_pos[gid], dtype=np.float64))
        colours.append(np.asarray(model.geom_rgba[gid], dtype=np.float64))
    return ObjectShape(name, np.array(centers).reshape(-1, 3), np.array(rotations).reshape(-1, 3, 3),
                       np.array(halves).reshape(-1, 3), np.array(colours).reshape(-1, 4))


def _table_top_z(physics: engine.Physics) -> float:
    """Height of the table surface (top of the geom named 'table'), 0 when the model has none."""
    try:
        gid = physics.model.name2id("table", "geom")
    except Exception:
        return 0.0
    mat = np.asarray(physics.data.geom_xmat[gid]).reshape(3, 3)
    center, half = np.asarray(physics.model.geom_aabb[gid][:3]), np.asarray(physics.model.geom_aabb[gid][3:])
    return float(physics.data.geom_xpos[gid][2] + (mat @ center)[2] + np.abs(mat[2]) @ half)
