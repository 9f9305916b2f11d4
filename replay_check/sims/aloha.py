"""gym-aloha (MuJoCo) adapter: drives the joint-space insertion / transfer-cube tasks directly.

gym-aloha's `env.step` renders three 480x640 cameras every step; replay only needs physics plus the
cameras a dataset has, so this adapter owns a dm_control Physics and the gym-aloha Task and steps
them the way `dm_control.rl.control.Environment` does (task.before_step, physics.step(n_sub_steps)).
"""

from __future__ import annotations

from types import SimpleNamespace

import mujoco
import numpy as np
from dm_control.mujoco import engine
from dm_control.rl.control import PhysicsError
from gym_aloha import constants
from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask

from replay_check.errors import ProfileError
from replay_check.sims.base import InitialState, Pose

# Free-joint qpos slices after the 16 arm/finger joints, in environment_state order.
TASKS = {
    "insertion": ("bimanual_viperx_insertion.xml", InsertionTask, ("peg", "socket")),
    "transfer_cube": ("bimanual_viperx_transfer_cube.xml", TransferCubeTask, ("cube",)),
}
ARM_QPOS = 16
LEFT_FINGER, RIGHT_FINGER = 6, 14  # qpos index of each side's first finger joint
LEFT_GRIPPER, RIGHT_GRIPPER = 6, 13  # index of each side's gripper in the 14-d dataset layout


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


class AlohaAdapter:
    """Joint-space ALOHA task on today's MuJoCo, rendering only the requested cameras."""

    def __init__(self, task: str, cameras: dict[str, tuple[int, int]] | None = None):
        if task not in TASKS:
            raise ProfileError(f"unknown gym-aloha task {task!r}; expected one of {sorted(TASKS)}")
        xml, task_cls, objects = TASKS[task]
        self.task_name = task
        self.physics = engine.Physics.from_xml_path(str(constants.ASSETS_DIR / xml))
        self.task = task_cls()
        self.object_names = objects
        self.cameras = dict(cameras or {})
        self.camera_names = tuple(self.cameras)
        self.n_sub_steps = int(round(constants.DT / self.physics.model.opt.timestep))
        self._unstable: str | None = None
        self._contacts = _ContactView(self.physics)
        self._reward: float | None = None  # cached until the state changes

    # -- state ------------------------------------------------------------------------------
    def restore(self, initial: InitialState) -> None:
        arm = robot_state_to_qpos(initial.robot)
        missing = set(self.object_names) - set(initial.objects)
        if missing:
            raise ValueError(f"initial state lacks object poses for {sorted(missing)}")
        with self.physics.reset_context():
            self.physics.data.qpos[:ARM_QPOS] = arm
            self.physics.data.ctrl[:] = arm
            for i, name in enumerate(self.object_names):
                pose = initial.objects[name]
                start = ARM_QPOS + 7 * i
                self.physics.data.qpos[start : start + 3] = pose.position
                self.physics.data.qpos[start + 3 : start + 7] = pose.quaternion
        self._unstable = None
        self._reward = None

    def step(self, action: np.ndarray) -> None:
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

    def objects_from_environment_state(self, env_state: np.ndarray) -> dict[str, Pose]:
        """Object poses from a recorded observation.environment_state row (free-joint qpos)."""
        env_state = np.asarray(env_state, dtype=np.float64)
        expected = 7 * len(self.object_names)
        if env_state.shape != (expected,):
            raise ValueError(f"environment_state has shape {env_state.shape}. Expected ({expected},).")
        return {
            name: Pose(env_state[7 * i : 7 * i + 3].copy(), env_state[7 * i + 3 : 7 * i + 7].copy())
            for i, name in enumerate(self.object_names)
        }

    # -- observation ----------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        height, width = self.cameras.get(camera, (480, 640))
        return self.physics.render(height=height, width=width, camera_id=camera)

    def reward(self) -> float:
        if self._reward is None:
            self._reward = float(self.task.get_reward(self._contacts.snapshot()))
        return self._reward

    def success(self) -> bool:
        return self.reward() >= self.task.max_reward

    def unstable(self) -> str | None:
        return self._unstable

    def close(self) -> None:
        self.physics.free()
