"""A simulator family that lives only in the test suite: a slider pushing a box (MuJoCo via dm_control).

It proves that a family is one module plus a profile: importing this module registers it, a profile
TOML names it (`adapter = "toy"`, `family_module = "tests.toy_family"`, `task = <model path>`), and
record / run / validate use it without any edit to the package. The model is written by the test
(`MODEL_XML`), so the SimSpec's task is the path of that file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from replay_check.families import Family, register
from replay_check.policies import EnvSpec, RecordedFrame, scalar_feature
from replay_check.sims.base import InitialState, Pose, SceneGeometry, SimObservation, SimSpec
from replay_check.sims.camera import PinholeCamera

MODEL_XML = """
<mujoco model="toy_slider">
  <option timestep="0.005"/>
  <visual><global offwidth="64" offheight="64"/></visual>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="1 1 0.1" rgba="0.8 0.8 0.8 1"/>
    <camera name="top" pos="0.25 0 1.0" xyaxes="1 0 0 0 1 0" fovy="45"/>
    <body name="slider" pos="0 0 0.03125">
      <joint name="slide" type="slide" axis="1 0 0" damping="5"/>
      <geom name="pusher" type="box" size="0.03125 0.0625 0.03125" rgba="0.2 0.2 0.9 1" mass="1"/>
    </body>
    <body name="box" pos="0.125 0 0.03125">
      <freejoint name="box"/>
      <geom name="box" type="box" size="0.03125 0.03125 0.03125" rgba="0.9 0.1 0.1 1" mass="0.2"/>
    </body>
  </worldbody>
  <actuator><position name="slide" joint="slide" kp="200"/></actuator>
</mujoco>
"""
CONTROL_DT = 0.05  # 20 Hz
GOAL_X = 0.3
IMAGE_KEY = "observation.images.top"
_MODEL: dict[str, Path] = {}


def use_model(path: Path) -> None:
    """Where `record --env toy-slider` finds the model the test wrote."""
    _MODEL["path"] = Path(path)


class ToyAdapter:
    """The slider/box scene behind the adapter protocol (state: slider position; object: the box)."""

    object_names = ("box",)

    def __init__(self, spec: SimSpec):
        from dm_control.mujoco import engine

        self.physics = engine.Physics.from_xml_path(spec.task)
        if "timestep" in spec.physics:
            self.physics.model.opt.timestep = float(spec.physics["timestep"])
        self.cameras = dict(spec.cameras) or {"top": (64, 64)}
        self.camera_names = tuple(self.cameras)
        self.n_sub = max(1, round(CONTROL_DT / self.physics.model.opt.timestep))

    def _set(self, robot: np.ndarray, objects: dict[str, Pose]) -> None:
        with self.physics.reset_context():
            self.physics.data.qpos[0] = float(robot[0])
            self.physics.data.ctrl[0] = float(robot[0])
            self.physics.data.qpos[1:4] = objects["box"].position
            self.physics.data.qpos[4:8] = objects["box"].quaternion

    def restore(self, initial: InitialState) -> None:
        self._set(np.asarray(initial.robot, dtype=np.float64), initial.objects)

    def step(self, action: np.ndarray) -> SimObservation:
        self.physics.data.ctrl[0] = float(np.asarray(action).reshape(-1)[0])
        self.physics.step(self.n_sub)
        return self.observe()

    def observe(self) -> SimObservation:
        qpos = self.physics.data.qpos
        box = Pose(qpos[1:4].copy(), qpos[4:8].copy())
        success = bool(qpos[1] > GOAL_X)
        finite = np.all(np.isfinite(qpos))
        return SimObservation(state=qpos[:1].copy(), objects={"box": box}, environment_state=qpos[1:8].copy(),
                              reward=float(success), success=success,
                              unstable=None if finite else "non-finite positions")

    def render(self, camera: str) -> np.ndarray:
        height, width = self.cameras[camera]
        return self.physics.render(height=height, width=width, camera_id=camera)

    def snapshot(self) -> np.ndarray:
        d = self.physics.data
        return np.concatenate([[d.time], d.qpos, d.qvel, d.ctrl, d.qacc_warmstart]).astype(np.float64)

    def _load(self, snapshot: np.ndarray) -> None:
        d, at = self.physics.data, 1
        d.time = snapshot[0]
        for target in (d.qpos, d.qvel, d.ctrl, d.qacc_warmstart):
            target[:] = snapshot[at:at + target.size]
            at += target.size
        self.physics.forward()

    def render_snapshot(self, camera: str, snapshot: np.ndarray) -> np.ndarray:
        current = self.snapshot()
        try:
            self._load(np.asarray(snapshot, dtype=np.float64))
            return self.render(camera)
        finally:
            self._load(current)

    def render_hypothesis(self, camera: str, robot_state: np.ndarray, object_poses: dict[str, Pose],
                          size: tuple[int, int] | None = None) -> np.ndarray:
        current = self.snapshot()
        height, width = size or self.cameras[camera]
        try:
            self._set(np.asarray(robot_state, dtype=np.float64), object_poses)
            return self.physics.render(height=height, width=width, camera_id=camera)
        finally:
            self._load(current)

    def camera_model(self, camera: str, height: int, width: int) -> PinholeCamera:
        self.physics.forward()
        return PinholeCamera.from_physics(self.physics, camera, height, width)

    def geometry(self) -> SceneGeometry:
        return SceneGeometry(objects=())

    def set_robot_state(self, state: np.ndarray) -> None:
        self.physics.data.qpos[0] = float(np.asarray(state).reshape(-1)[0])
        self.physics.data.qvel[0] = 0.0
        self.physics.forward()

    def contacts(self) -> tuple[tuple[str, str], ...]:
        model, data = self.physics.model, self.physics.data
        bodies = [model.id2name(int(model.geom_bodyid[g]), "body") or "world" for g in range(model.ngeom)]
        return tuple((bodies[c.geom1], bodies[c.geom2]) for c in data.contact[:data.ncon])

    def body_poses(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        model, data = self.physics.model, self.physics.data
        names = tuple(model.id2name(i, "body") for i in range(1, model.nbody))
        return names, np.array(data.xpos[1:]), np.array(data.xquat[1:])

    def close(self) -> None:
        self.physics.free()


def objects_from_environment_state(row: np.ndarray, names: tuple[str, ...]) -> dict[str, Pose]:
    row = np.asarray(row, dtype=np.float64)
    return {"box": Pose(row[:3].copy(), row[3:7].copy())}


def rollout(seed: int, steps: int, render: bool) -> Iterator[RecordedFrame]:
    """The trivial policy: the slider's target moves forward at a seed-dependent speed.

    Start pose and actions are exact in float32, so the recording replays bit for bit (a box resting on
    the floor amplifies a 1e-9 m start difference to 0.1 mm within ten steps).
    """
    adapter = ToyAdapter(SimSpec("toy", str(_MODEL["path"]), cameras={"top": (64, 64)}))
    try:
        start = Pose(np.array([0.125, 0.0, 0.03125]))
        adapter.restore(InitialState(np.zeros(1), {"box": start}, "truth"))
        observation = adapter.observe()
        speed = (2 + seed % 3) / 256
        for t in range(steps):
            action = np.array([speed * (t + 1)])
            images = {IMAGE_KEY: adapter.render("top")} if render else {}
            frame = RecordedFrame(state=observation.state, action=action,
                                  environment_state=observation.environment_state, images=images)
            observation = adapter.step(action)
            frame.reward, frame.success = observation.reward, observation.success
            yield frame
    finally:
        adapter.close()


def _env() -> EnvSpec:
    vector = {"dtype": "float32", "shape": [1], "names": {"motors": ["slide"]}}
    return EnvSpec(
        name="toy-slider", fps=int(round(1 / CONTROL_DT)), robot_type="toy slider", task="Push the box past x=0.3.",
        default_steps=40,
        features={
            "observation.state": vector,
            "action": vector,
            IMAGE_KEY: {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channel"]},
            "next.reward": scalar_feature("float32"),
            "next.success": scalar_feature("bool"),
            "next.done": scalar_feature("bool"),
        },
        env_state_names=[f"box_{f}" for f in ("x", "y", "z", "qw", "qx", "qy", "qz")],
        rollout=rollout,
    )


FAMILY = register(Family(
    name="toy",
    make_adapter=ToyAdapter,
    objects_from_environment_state=objects_from_environment_state,
    object_units="m",
    record_envs={"toy-slider": _env},
    physics_keys=("timestep",),
))
