"""Scripted ALOHA policies: plan in end-effector space, record the joint trajectory, replay it in joint space.

The joint-space task is what the public ALOHA sim datasets record, but grasps are much easier to script
for the grippers' poses. So a rollout has two passes: a waypoint plan drives the mocap bodies of
gym-aloha's end-effector model (physics only, ~1 ms/step) and we log the arm joints it produces; then
that joint trajectory is replayed in the joint-space task through `AlohaAdapter`, which yields the rows.
Object poses come from a seeded generator, so every episode's ground truth is known.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from dm_control.mujoco import engine
from gym_aloha import constants

from replay_check.errors import InputError
from replay_check.policies import RecordedFrame
from replay_check.sims.aloha import ARM_QPOS, AlohaAdapter, qpos_to_robot_state
from replay_check.sims.base import InitialState, Pose, quat_to_matrix

EE_MODELS = {
    "insertion": "bimanual_viperx_end_effector_insertion.xml",
    "transfer_cube": "bimanual_viperx_end_effector_transfer_cube.xml",
}
# (x range, y range) of each object's spawn area; z is fixed, orientation is identity.
SPAWN_AREAS = {
    "transfer_cube": {"cube": ((0.0, 0.2), (0.4, 0.6))},
    "insertion": {"peg": ((0.1, 0.2), (0.4, 0.6)), "socket": ((-0.2, -0.1), (0.4, 0.6))},
}
SPAWN_Z = 0.05
OPEN, CLOSED = 1.0, 0.0  # normalized gripper commands
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
CAMERA_KEY = "observation.images.top"
PEG_HALF_LENGTH = 0.06
PEG_CONTACT_OFFSET = 0.10  # peg centre - socket centre along x when the peg end touches the pin
REFINE_PASSES = 2
SERVO_GAIN = 0.1
YAW_SERVO_FROM = 225  # insertion: grasps are closed
MAX_YAW_FIX = np.deg2rad(25)
SAG_GAIN = 0.05  # per step; the weld sags a few cm under gravity and grasp loads
REPLAN_AT = {"transfer_cube": 255, "insertion": 295}  # step at which a plan sees where objects really are


def _check_task(task: str) -> None:
    if task not in EE_MODELS:
        raise InputError(f"unknown scripted ALOHA task {task!r}; expected one of {sorted(EE_MODELS)}")


def sample_object_poses(task: str, seed: int) -> dict[str, Pose]:
    """Object spawn poses for `task`, drawn from `seed` (x then y per object, in profile order)."""
    _check_task(task)
    rng = np.random.default_rng(seed)
    poses = {}
    for name, ((x_lo, x_hi), (y_lo, y_hi)) in SPAWN_AREAS[task].items():
        x, y = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
        poses[name] = Pose(np.array([x, y, SPAWN_Z]), IDENTITY.copy())
    return poses


# ---------------------------------------------------------------------------------------------- plans (pure)


def axis_angle_quat(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """wxyz quaternion of a rotation by `degrees` about `axis`."""
    axis_arr = np.asarray(axis, dtype=np.float64)
    half = np.deg2rad(degrees) / 2.0
    return np.concatenate([[np.cos(half)], np.sin(half) * axis_arr / np.linalg.norm(axis_arr)])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b of wxyz quaternions (apply b, then a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def slerp(q0: np.ndarray, q1: np.ndarray, frac: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions, along the shorter arc."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + frac * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - frac) * theta) * q0 + np.sin(frac * theta) * q1) / np.sin(theta)


@dataclass(frozen=True)
class Waypoint:
    """Where one gripper should be at control step `t`: mocap position, wxyz quaternion, gripper command."""

    t: int
    xyz: tuple[float, float, float]
    quat: tuple[float, float, float, float]
    gripper: float


def _wp(t: int, xyz: np.ndarray, quat: np.ndarray, gripper: float) -> Waypoint:
    return Waypoint(t, tuple(float(v) for v in xyz), tuple(float(v) for v in quat), float(gripper))


def interpolate(waypoints: list[Waypoint], t: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Pose and gripper command at step `t`: linear in position/gripper, slerp in rotation, held at the ends."""
    if t <= waypoints[0].t:
        first = waypoints[0]
        return np.array(first.xyz), np.array(first.quat), first.gripper
    for before, after in zip(waypoints, waypoints[1:], strict=False):
        if before.t <= t <= after.t:
            frac = (t - before.t) / max(after.t - before.t, 1)
            xyz = (1 - frac) * np.array(before.xyz) + frac * np.array(after.xyz)
            quat = slerp(np.array(before.quat), np.array(after.quat), frac)
            return xyz, quat, (1 - frac) * before.gripper + frac * after.gripper
    last = waypoints[-1]
    return np.array(last.xyz), np.array(last.quat), last.gripper


def transfer_cube_plan(
    objects: dict[str, Pose], start: dict[str, Waypoint], steps: int, seen: dict[str, np.ndarray] | None = None
) -> dict[str, list[Waypoint]]:
    """Right arm picks the cube and brings it to the middle; the left takes it there, the right lets go.

    `seen` holds object positions observed just before the handover; the left hand aims at the cube
    where it really is in the right hand rather than where it was planned to be.
    """
    cube = objects["cube"].position
    handover = np.array([0.0, 0.5, 0.25])  # right fingertips at the handover
    held = seen["cube"] if seen else handover + [0.015, 0, 0]
    down = axis_angle_quat((0, 1, 0), -60)  # right gripper tilted down, fingers close along y
    level = np.array(start["right"].quat)
    rolled = axis_angle_quat((1, 0, 0), 90)  # left gripper level, fingers close along z
    grasp = cube + [0, 0, -0.04]  # fingertips 1 cm above the table
    right = [
        start["right"],
        _wp(90, grasp + [0, 0, 0.1], down, OPEN),
        _wp(130, grasp, down, OPEN),
        _wp(160, grasp, down, CLOSED),
        _wp(170, grasp, down, CLOSED),
        _wp(200, grasp + [0, 0, 0.1], down, CLOSED),
        _wp(250, handover, level, CLOSED),
        _wp(320, handover, level, CLOSED),
        _wp(335, handover, level, OPEN),
        _wp(370, handover + [0.1, 0, 0], level, OPEN),
        _wp(steps, handover + [0.1, 0, 0], level, OPEN),
    ]
    left = [
        start["left"],
        _wp(100, handover + [-0.12, 0, 0], rolled, OPEN),
        _wp(260, held + [-0.14, 0, 0], rolled, OPEN),
        _wp(290, held + [0.012, 0, 0], rolled, OPEN),
        _wp(315, held + [0.012, 0, 0], rolled, CLOSED),
        _wp(370, held + [-0.12, 0, 0], rolled, CLOSED),
        _wp(steps, held + [-0.12, 0, 0], rolled, CLOSED),
    ]
    return {"left": left, "right": right}


def insertion_plan(
    objects: dict[str, Pose], start: dict[str, Waypoint], steps: int, seen: dict[str, np.ndarray] | None = None
) -> dict[str, list[Waypoint]]:
    """Left grasps the socket, right grasps the peg; both come to the middle and the peg slides onto the pin.

    Both grippers keep the tilt they grasped with, so peg and socket stay level in the fingers.
    `seen` holds object positions observed once both are lifted; the right hand then corrects for where
    the peg sits in its fingers so that the peg's axis lines up with the socket's.
    """
    peg, socket = objects["peg"].position, objects["socket"].position
    meet = np.array([0.0, 0.5, 0.03])
    down_left = axis_angle_quat((0, 1, 0), 60)
    down_right = axis_angle_quat((0, 1, 0), -60)
    socket_at = meet + [-0.1, 0, 0]  # left fingertips while waiting
    peg_at = meet + [0.1, 0, 0]  # right fingertips while waiting
    socket_seen, peg_seen = (seen["socket"], seen["peg"]) if seen else (socket_at, peg_at)
    lateral = (socket_seen - peg_seen) * [0, 1, 1]
    # Peg centre this far along +x from the socket centre: its end 2 cm past touching the pin.
    inserted = peg_at + lateral + [socket_seen[0] + PEG_CONTACT_OFFSET - 0.02 - peg_seen[0], 0, 0]
    socket_grip, peg_grip = socket + [0, 0, -0.03], peg + [0, 0, -0.03]
    left = [
        start["left"],
        _wp(120, socket_grip + [0, 0, 0.1], down_left, OPEN),
        _wp(170, socket_grip, down_left, OPEN),
        _wp(200, socket_grip, down_left, CLOSED),
        _wp(220, socket_grip, down_left, CLOSED),
        _wp(240, socket_grip + [0, 0, 0.02], down_left, CLOSED),
        _wp(290, socket_at, down_left, CLOSED),
        _wp(steps, socket_at, down_left, CLOSED),
    ]
    right = [
        start["right"],
        _wp(120, peg_grip + [0, 0, 0.1], down_right, OPEN),
        _wp(170, peg_grip, down_right, OPEN),
        _wp(200, peg_grip, down_right, CLOSED),
        _wp(220, peg_grip, down_right, CLOSED),
        _wp(240, peg_grip + [0, 0, 0.04], down_right, CLOSED),
        _wp(290, peg_at, down_right, CLOSED),
        _wp(310, peg_at + lateral, down_right, CLOSED),
        _wp(375, inserted, down_right, CLOSED),
        _wp(steps, inserted, down_right, CLOSED),
    ]
    return {"left": left, "right": right}


PLANS = {"transfer_cube": transfer_cube_plan, "insertion": insertion_plan}


# ---------------------------------------------------------------------------------------------- pass 1: EE


def _object_positions(physics: engine.Physics, objects: dict[str, Pose]) -> dict[str, np.ndarray]:
    """Where each object's free joint is now, keyed like `objects`."""
    return {name: physics.data.qpos[ARM_QPOS + 7 * i : ARM_QPOS + 7 * i + 3].copy() for i, name in enumerate(objects)}


def _rotation_vector(q: np.ndarray) -> np.ndarray:
    """Axis * angle (rad) of a wxyz quaternion, along the shorter arc."""
    q = q if q[0] >= 0 else -q
    sin_half = np.linalg.norm(q[1:])
    if sin_half < 1e-9:
        return np.zeros(3)
    return q[1:] / sin_half * 2.0 * np.arctan2(sin_half, q[0])


def _object_yaws(physics: engine.Physics) -> np.ndarray:
    """Yaw (rad, about +z) of the socket and the peg: what each hand's turn should cancel."""
    qpos = physics.data.qpos
    yaws = []
    for start in (ARM_QPOS + 10, ARM_QPOS + 3):  # socket quat, peg quat
        w, x, y, z = qpos[start : start + 4]
        yaws.append(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))
    return np.array(yaws)


def _insertion_misalignment(physics: engine.Physics) -> tuple[np.ndarray, np.ndarray]:
    """How far the peg is off the socket's axis: (world offset across the axis, world rotation vector).

    Peg and socket pivot in the fingers while carried, so the right hand steers the peg onto the
    socket's axis as it sees them rather than trusting the grasp.
    """
    objects = physics.data.qpos[ARM_QPOS : ARM_QPOS + 14]
    peg_pos, peg_quat, sock_pos, sock_quat = objects[0:3], objects[3:7], objects[7:10], objects[10:14]
    sock_rot = quat_to_matrix(sock_quat)
    peg_end = peg_pos + quat_to_matrix(peg_quat) @ [-PEG_HALF_LENGTH, 0.0, 0.0]  # the end that goes in first
    across = sock_rot.T @ (peg_end - sock_pos) * [0.0, 1.0, 1.0]
    turn = quat_mul(sock_quat, peg_quat * [1, -1, -1, -1])
    return -(sock_rot @ across), _rotation_vector(turn)


def _start_waypoints(physics: engine.Physics) -> dict[str, Waypoint]:
    """Each gripper's current mocap pose at t=0, gripper closed as gym-aloha starts it."""
    return {
        side: _wp(0, physics.data.mocap_pos[i].copy(), physics.data.mocap_quat[i].copy(), CLOSED)
        for i, side in enumerate(("left", "right"))
    }


def _weld_offsets(physics: engine.Physics) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each mocap body's pose in its gripper_link frame at qpos0, which is what the weld holds on today's MuJoCo.

    The welds carry no relpose, so MuJoCo keeps the model-reference offset: the mocap point sits ~13 cm
    ahead of gripper_link, near the fingertips. Targets below are therefore fingertip positions.
    """
    with physics.reset_context():
        pass
    offsets = []
    for i, side in enumerate(("left", "right")):
        link = f"vx300s_{side}/gripper_link"
        rot = physics.named.data.xmat[link].reshape(3, 3)
        rel_pos = rot.T @ (physics.data.mocap_pos[i] - physics.named.data.xpos[link])
        link_quat = physics.named.data.xquat[link]
        rel_quat = quat_mul(link_quat * [1, -1, -1, -1], physics.data.mocap_quat[i])
        offsets.append((rel_pos.copy(), rel_quat))
    return offsets


def _fingertip_point(physics: engine.Physics, side: str, rel_pos: np.ndarray) -> np.ndarray:
    """Where the weld would put its mocap point if it were rigid: the point the plan steers."""
    link = f"vx300s_{side}/gripper_link"
    return physics.named.data.xpos[link] + physics.named.data.xmat[link].reshape(3, 3) @ rel_pos


def _reset_ee(physics: engine.Physics, objects: dict[str, Pose]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Arms at START_ARM_POSE, each mocap body where its weld already holds, objects placed, grippers closed."""
    offsets = _weld_offsets(physics)
    with physics.reset_context():
        physics.data.qpos[:ARM_QPOS] = constants.START_ARM_POSE
        closed = constants.PUPPET_GRIPPER_POSITION_CLOSE
        physics.data.ctrl[:] = [closed, -closed, closed, -closed]
        for i, pose in enumerate(objects.values()):
            start = ARM_QPOS + 7 * i
            physics.data.qpos[start : start + 3] = pose.position
            physics.data.qpos[start + 3 : start + 7] = pose.quaternion
    # Gripper poses are known only after the forward pass that reset_context runs on exit.
    for i, side in enumerate(("left", "right")):
        link = f"vx300s_{side}/gripper_link"
        rel_pos, rel_quat = offsets[i]
        rot = physics.named.data.xmat[link].reshape(3, 3)
        physics.data.mocap_pos[i] = physics.named.data.xpos[link] + rot @ rel_pos
        physics.data.mocap_quat[i] = quat_mul(physics.named.data.xquat[link], rel_quat)
    return offsets


def ee_joint_trajectory(task: str, objects: dict[str, Pose], steps: int) -> np.ndarray:
    """Run the waypoint plan in the end-effector model; (steps, 14) joint targets in the dataset layout.

    Row t holds the arm joints reached after EE step t and the gripper command of step t (not the finger
    position, which lags behind the command and would under-close grasps when replayed).
    """
    physics = engine.Physics.from_xml_path(str(constants.ASSETS_DIR / EE_MODELS[task]))
    try:
        offsets = _reset_ee(physics, objects)
        n_sub = int(round(constants.DT / physics.model.opt.timestep))
        start = _start_waypoints(physics)
        plan = PLANS[task](objects, start, steps)
        out = np.empty((steps, 14))
        yaw_fix = np.zeros(2)  # insertion only: turns each hand so socket and peg stay square to x
        servo = np.zeros(3)  # insertion only: keeps the peg's axis on the socket's while it slides in
        bias = np.zeros((2, 3))  # integral correction of each weld's sag, so fingertips reach their targets
        for t in range(steps):
            if t == REPLAN_AT[task]:
                plan = PLANS[task](objects, start, steps, _object_positions(physics, objects))
            if task == "insertion" and t >= YAW_SERVO_FROM:
                yaw = _object_yaws(physics)  # socket (left hand), peg (right hand)
                yaw_fix = np.clip(yaw_fix - SERVO_GAIN * yaw, -MAX_YAW_FIX, MAX_YAW_FIX)
            if task == "insertion" and t >= REPLAN_AT[task]:
                offset, _ = _insertion_misalignment(physics)
                servo = np.clip(servo + SERVO_GAIN * offset, -0.05, 0.05)
            grippers = []
            for i, side in enumerate(("left", "right")):
                xyz, quat, grip = interpolate(plan[side], t + 1)
                quat = quat_mul(axis_angle_quat((0, 0, 1), np.rad2deg(yaw_fix[i])), quat)
                if side == "right":
                    xyz = xyz + servo
                reached = _fingertip_point(physics, side, offsets[i][0])
                bias[i] = np.clip(bias[i] + SAG_GAIN * (physics.data.mocap_pos[i] - bias[i] - reached), -0.05, 0.05)
                physics.data.mocap_pos[i] = xyz + bias[i]
                physics.data.mocap_quat[i] = quat
                grippers.append(grip)
            finger = [constants.unnormalize_puppet_gripper_position(g) for g in grippers]
            physics.data.ctrl[:] = [finger[0], -finger[0], finger[1], -finger[1]]
            physics.step(n_sub)
            out[t] = qpos_to_robot_state(physics.data.qpos)
            out[t, 6], out[t, 13] = grippers
        return out
    finally:
        physics.free()


# ---------------------------------------------------------------------------------------------- pass 2: joints


def _replay_states(adapter: AlohaAdapter, initial: InitialState, actions: np.ndarray) -> np.ndarray:
    """Robot states reached after each action in the joint-space task (physics only)."""
    adapter.restore(initial)
    reached = np.empty_like(actions)
    for t, action in enumerate(actions):
        adapter.advance(action)
        reached[t] = adapter.state()
    return reached


def refine_actions(adapter: AlohaAdapter, initial: InitialState, targets: np.ndarray, passes: int) -> np.ndarray:
    """Iterative learning control: shift arm commands by the tracking error of the previous replay.

    The joint-space position servos lag and sag (weak wrist gains), so replaying the end-effector joint
    trajectory as-is lands centimetres off where the grasps happened; a couple of passes remove most
    of that. Gripper commands are kept: a finger stopped by an object is meant to lag its command.
    """
    actions = targets.copy()
    arm = np.ones(14, dtype=bool)
    arm[[6, 13]] = False
    for _ in range(passes):
        error = targets - _replay_states(adapter, initial, actions)
        actions[:, arm] += error[:, arm]
    return actions


def rollout_aloha(task: str, seed: int, *, steps: int = 400, render: bool = True) -> Iterator[RecordedFrame]:
    """Yield one dataset row per control step of a scripted `task` episode drawn from `seed`.

    `task` is "insertion" or "transfer_cube". With render=False no image is made (physics only), which is
    how success rates are measured; with render=True each frame carries the 480x640 `top` camera.
    """
    _check_task(task)
    if steps < 1:
        raise InputError(f"steps is {steps}; expected a positive number of control steps")
    objects = sample_object_poses(task, seed)
    targets = ee_joint_trajectory(task, objects, steps)
    adapter = AlohaAdapter(task, {"top": (480, 640)} if render else None)
    try:
        robot = qpos_to_robot_state(np.asarray(constants.START_ARM_POSE, dtype=np.float64))
        initial = InitialState(robot=robot, objects=objects, method="scripted")
        actions = refine_actions(adapter, initial, targets, REFINE_PASSES)
        adapter.restore(initial)
        for action in actions:
            state, env_state = adapter.state(), adapter.environment_state()
            images = {CAMERA_KEY: adapter.render("top")} if render else {}
            adapter.advance(action)
            yield RecordedFrame(
                state=state,
                action=action.copy(),
                environment_state=env_state,
                images=images,
                reward=adapter.reward(),
                success=adapter.success(),
            )
    finally:
        adapter.close()
