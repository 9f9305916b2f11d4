"""The PushT family (gym-pusht on pymunk): one T block, poses in arena pixels with a planar angle.

lerobot/pusht's next.success is never set; its reward is clipped coverage / 0.95, so a recording
succeeded when its reward reaches 1. The per-frame block fit is unbiased to ~1 px, so replays are
compared with the simulator's exact pose (not measured symmetrically).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from replay_check.families import Family, ObjectMeasure, register
from replay_check.policies import EnvSpec, RecordedFrame, scalar_feature
from replay_check.sims.base import InitialState, Pose, SimSpec
from replay_check.sims.pusht_geometry import pose_from_keypoints

IMAGE_KEY = "observation.image"


def make_adapter(spec: SimSpec):
    from replay_check.sims.pusht import PushTAdapter

    return PushTAdapter.from_spec(spec)


def objects_from_environment_state(env_state: np.ndarray, names: tuple[str, ...]) -> dict[str, Pose]:
    """The block pose from 8 recorded keypoints (exact up to float32)."""
    del names  # one block
    return {"block": Pose.planar(*pose_from_keypoints(env_state))}


def estimate(frame0: np.ndarray, robot_state0: np.ndarray, adapter, camera: str, profile) -> InitialState:
    from replay_check.initial_state.pusht import estimate_pusht_initial_state

    return estimate_pusht_initial_state(frame0, robot_state0, adapter, camera=camera)


def meter(adapter, camera: str, height: int, width: int, profile) -> ObjectMeasure:
    from replay_check.initial_state.pusht_track import BlockMeter

    block_meter = BlockMeter()

    def measure(frame: np.ndarray) -> dict[str, Pose | None]:
        found = block_meter.measure(frame)
        return {"block": None if found is None else Pose.planar(*found)}

    return measure


def recorded_success(reward: np.ndarray | None, success: np.ndarray | None, declared: bool | None) -> bool | None:
    """Any next.success flag, else reward >= 1 (clipped coverage / 0.95), else the declaration."""
    if success is not None and success.any():
        return True
    if reward is not None:
        return bool(np.nanmax(reward) >= 1.0)
    if success is not None:
        return False
    return declared


def overlay(height: int, width: int):
    from replay_check.overlays import pusht_overlay

    return pusht_overlay(height, width)


def scene(task: str, object_names: tuple[str, ...], cameras: dict[str, str]):
    """The 2-D scene: T block and agent, recorded vs replayed, in arena pixels (the overlay at arena scale)."""
    del task, object_names, cameras
    from replay_check.overlays import ARENA_PX, pusht_overlay
    from replay_check.scene2d import PlanarSceneRecorder

    return PlanarSceneRecorder(pusht_overlay(int(ARENA_PX), int(ARENA_PX)), ARENA_PX)


def _env() -> EnvSpec:
    def rollout(seed: int, steps: int, render: bool) -> Iterator[RecordedFrame]:
        from replay_check.policies.pusht import rollout_pusht

        return rollout_pusht(seed, render=render, max_steps=steps)

    vector = {"dtype": "float32", "shape": [2], "names": {"motors": ["motor_0", "motor_1"]}}
    return EnvSpec(
        name="pusht",
        fps=10,
        robot_type="2d pointer",
        task="Push the T-shaped block onto the T-shaped target.",
        default_steps=300,
        features={
            IMAGE_KEY: {"dtype": "video", "shape": [96, 96, 3], "names": ["height", "width", "channel"]},
            "observation.state": vector,
            "action": vector,
            "next.reward": scalar_feature("float32"),
            "next.success": scalar_feature("bool"),
            "next.done": scalar_feature("bool"),
        },
        env_state_names=[f"keypoint_{i}_{axis}" for i in range(8) for axis in ("x", "y")],
        rollout=rollout,
    )


FAMILY = register(Family(
    name="pusht",
    make_adapter=make_adapter,
    objects_from_environment_state=objects_from_environment_state,
    object_units="px",
    planar=True,
    estimate=estimate,
    meter=meter,
    meter_symmetric=False,
    recorded_success=recorded_success,
    overlay=overlay,
    scene=scene,
    record_envs={"pusht": _env},
    # A 96x96 pygame drawing takes ~2 ms, about a worker round trip: one worker steps and renders
    # (running ahead) while the main process decodes, measures, compares and logs.
    render_workers=True,
    step_in_worker=True,
))
