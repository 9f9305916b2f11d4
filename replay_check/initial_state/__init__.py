"""Recover the state an episode starts from: read it when the dataset stored it, else estimate it.

The public ALOHA and PushT image datasets store no object pose; the family estimators recover it
from camera frame 0 by render-and-compare. This module only chooses between those routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from replay_check.dataset.episode import Episode
from replay_check.errors import EstimationError
from replay_check.profiles import Profile
from replay_check.sims.base import InitialState, Pose, SimAdapter

# A per-frame measurement of object poses in a recorded image (None where an object is not seen).
ObjectMeasure = Callable[[np.ndarray], dict[str, Pose | None]]


@dataclass(frozen=True)
class FrameObjectMeter:
    """How a replay measures objects in frames when the dataset stores no object state.

    `symmetric`: also measure the replayed frame and compare measurement with measurement, because the
    measurement is biased (ALOHA: lifted or occluded objects); otherwise compare with the simulator's pose.
    """

    camera: str
    measure: ObjectMeasure
    symmetric: bool


def estimation_camera(episode: Episode, profile: Profile) -> str | None:
    """The dataset camera the profile estimates objects from, if the episode has it."""
    preferred = [profile.estimate_from] if profile.estimate_from else []
    for key in [*preferred, *profile.cameras]:
        if key in episode.cameras:
            return key
    return None


def recover_initial_state(episode: Episode, profile: Profile, adapter: SimAdapter) -> InitialState:
    """InitialState from environment_state row 0 when present, else estimated from frame 0."""
    robot = np.asarray(episode.state[0], dtype=np.float64)
    if episode.environment_state is not None:
        objects = adapter.objects_from_environment_state(episode.environment_state[0])
        return InitialState(robot=robot, objects=objects, method="environment_state")
    if not profile.objects:
        return InitialState(robot=robot, objects={}, method="robot_only")
    camera_key = estimation_camera(episode, profile)
    if camera_key is None:
        raise EstimationError(
            f"episode {episode.index} stores no observation.environment_state and no camera "
            f"({', '.join(profile.cameras) or 'none mapped'}) to estimate {', '.join(profile.objects)} from"
        )
    frame0 = episode.first_frame(camera_key)
    sim_camera = profile.cameras[camera_key]
    if profile.adapter == "aloha":
        from replay_check.initial_state.aloha import estimate_aloha_objects

        return estimate_aloha_objects(frame0, robot, adapter, camera=sim_camera, colors=profile.object_colors)
    if profile.adapter == "pusht":
        from replay_check.initial_state.pusht import estimate_pusht_initial_state

        return estimate_pusht_initial_state(frame0, robot, adapter)
    raise EstimationError(f"no initial-state estimator for simulator family {profile.adapter!r}")


def object_measure(episode: Episode, profile: Profile, adapter: SimAdapter) -> FrameObjectMeter | None:
    """A per-frame object measurement for datasets without env state (None when there is no camera)."""
    camera_key = estimation_camera(episode, profile)
    if camera_key is None or not profile.objects:
        return None
    source = episode.cameras[camera_key]
    if profile.adapter == "aloha":
        from replay_check.initial_state.aloha import ObjectMeter

        meter = ObjectMeter(adapter, profile.cameras[camera_key], source.height, source.width, profile.object_colors)

        def measure_aloha(frame: np.ndarray) -> dict[str, Pose | None]:
            return {name: None if p is None else Pose(p) for name, p in meter.measure(frame).items()}

        return FrameObjectMeter(camera_key, measure_aloha, symmetric=True)
    if profile.adapter == "pusht":
        from replay_check.initial_state.pusht import BlockMeter

        block_meter = BlockMeter()

        def measure_pusht(frame: np.ndarray) -> dict[str, Pose | None]:
            found = block_meter.measure(frame)
            return {"block": None if found is None else Pose.planar(*found)}

        # The silhouette fit is unbiased to ~1 px, so the replay is compared with the simulator's exact pose.
        return FrameObjectMeter(camera_key, measure_pusht, symmetric=False)
    return None
