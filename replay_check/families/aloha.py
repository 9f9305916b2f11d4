"""The ALOHA family (gym-aloha on MuJoCo): insertion and transfer-cube, objects in metres.

Declares the adapter, the frame-0 estimator, the per-frame object meter (applied to recorded and
replayed frames alike, because it is biased for lifted objects), and the `record` recipes. Heavy
modules are imported only when a declared function runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from replay_check.families import Family, ObjectMeasure, register
from replay_check.policies import EnvSpec, RecordedFrame, scalar_feature
from replay_check.sims.base import InitialState, Pose, SimSpec

MOTORS = [
    f"{side}_{joint}"
    for side in ("left", "right")
    for joint in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
]
POSE_FIELDS = ("x", "y", "z", "qw", "qx", "qy", "qz")
IMAGE_KEY = "observation.images.top"


def make_adapter(spec: SimSpec):
    from replay_check.sims.aloha import AlohaAdapter

    return AlohaAdapter.from_spec(spec)


def objects_from_environment_state(env_state: np.ndarray, names: tuple[str, ...]) -> dict[str, Pose]:
    """Object poses from a recorded observation.environment_state row (free-joint qpos, 7 per object)."""
    env_state = np.asarray(env_state, dtype=np.float64)
    expected = 7 * len(names)
    if env_state.shape != (expected,):
        raise ValueError(f"environment_state has shape {env_state.shape}. Expected ({expected},).")
    return {
        name: Pose(env_state[7 * i : 7 * i + 3].copy(), env_state[7 * i + 3 : 7 * i + 7].copy())
        for i, name in enumerate(names)
    }


def estimate(frame0: np.ndarray, robot_state0: np.ndarray, adapter, camera: str, profile) -> InitialState:
    from replay_check.initial_state.aloha import estimate_aloha_objects

    return estimate_aloha_objects(frame0, robot_state0, adapter, camera=camera, colors=profile.object_colors)


def meter(adapter, camera: str, height: int, width: int, profile) -> ObjectMeasure:
    from replay_check.initial_state.aloha import ObjectMeter

    object_meter = ObjectMeter(adapter, camera, height, width, profile.object_colors)

    def measure(frame: np.ndarray) -> dict[str, Pose | None]:
        return {name: None if p is None else Pose(p) for name, p in object_meter.measure(frame).items()}

    return measure


def scene(task: str, object_names: tuple[str, ...], cameras: dict[str, str]):
    """The 3-D scene recorder: gym-aloha's model read by MuJoCo in this process (geometry and kinematics only)."""
    from replay_check.scene3d import MujocoScene, SceneRecorder
    from replay_check.sims.aloha import ARM_QPOS, load_model, robot_state_to_qpos

    model = load_model(task)
    bodies = {}
    for i, name in enumerate(object_names):
        joint = [j for j in range(model.njnt) if model.jnt_qposadr[j] == ARM_QPOS + 7 * i and model.jnt_type[j] == 0]
        if joint:
            bodies[name] = model.body(int(model.jnt_bodyid[joint[0]])).name

    def qpos_of(state: np.ndarray, objects) -> np.ndarray:
        """14-d recorded state -> arm and finger qpos; recorded object poses -> their free joints."""
        qpos = model.qpos0.copy()
        qpos[:ARM_QPOS] = robot_state_to_qpos(state)
        for i, name in enumerate(object_names):
            if objects and name in objects:
                position, quaternion = objects[name]
                start = ARM_QPOS + 7 * i
                qpos[start : start + 3] = position
                qpos[start + 3 : start + 7] = quaternion
        return qpos

    return SceneRecorder(MujocoScene(model, qpos_of, object_bodies=bodies), cameras)


def _env(name: str, task: str, objects: tuple[str, ...], sim_task: str) -> EnvSpec:
    def rollout(seed: int, steps: int, render: bool) -> Iterator[RecordedFrame]:
        from replay_check.policies.aloha import rollout_aloha

        return rollout_aloha(sim_task, seed, steps=steps, render=render)

    vector = {"dtype": "float32", "shape": [14], "names": {"motors": MOTORS}}
    return EnvSpec(
        name=name,
        fps=50,
        robot_type="aloha",
        task=task,
        default_steps=400,
        features={
            "observation.state": vector,
            "action": vector,
            IMAGE_KEY: {"dtype": "video", "shape": [480, 640, 3], "names": ["height", "width", "channel"]},
            "next.reward": scalar_feature("float32"),
            "next.success": scalar_feature("bool"),
            "next.done": scalar_feature("bool"),
        },
        env_state_names=[f"{obj}_{field}" for obj in objects for field in POSE_FIELDS],
        rollout=rollout,
    )


FAMILY = register(Family(
    name="aloha",
    make_adapter=make_adapter,
    objects_from_environment_state=objects_from_environment_state,
    object_units="m",
    planar=False,
    estimate=estimate,
    meter=meter,
    meter_symmetric=True,
    scene=scene,
    record_envs={
        "aloha-insertion": lambda: _env("aloha-insertion", "Insert the peg into the socket.", ("peg", "socket"),
                                        "insertion"),
        "aloha-transfer-cube": lambda: _env(
            "aloha-transfer-cube", "Pick up the cube with the right arm and transfer it to the left arm.",
            ("cube",), "transfer_cube"),
    },
    physics_keys=("timestep", "friction_scale"),
))
