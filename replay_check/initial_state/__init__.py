"""Recover the state an episode starts from: read it when the dataset stored it, else estimate it.

The public ALOHA and PushT image datasets store no object pose; the family estimators recover it
from camera frame 0 by render-and-compare. This module only chooses between those routes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replay_check.dataset.episode import Episode
from replay_check.errors import EstimationError
from replay_check.families import ObjectMeasure, family_of
from replay_check.profiles import Profile
from replay_check.sims.base import InitialState, SimAdapter


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
    declared = family_of(profile)
    if episode.environment_state is not None:
        objects = declared.objects_from_environment_state(episode.environment_state[0], profile.objects)
        return InitialState(robot=robot, objects=objects, method="environment_state")
    if not profile.objects:
        return InitialState(robot=robot, objects={}, method="robot_only")
    camera_key = estimation_camera(episode, profile)
    if camera_key is None:
        raise EstimationError(
            f"episode {episode.index} stores no observation.environment_state and no camera "
            f"({', '.join(profile.cameras) or 'none mapped'}) to estimate {', '.join(profile.objects)} from"
        )
    if declared.estimate is None:
        raise EstimationError(f"simulator family {declared.name!r} has no initial-state estimator; "
                              "the dataset needs observation.environment_state")
    frame0 = episode.first_frame(camera_key)
    return declared.estimate(frame0, robot, adapter, profile.cameras[camera_key], profile)


def object_measure(episode: Episode, profile: Profile, adapter: SimAdapter) -> FrameObjectMeter | None:
    """A per-frame object measurement for datasets without env state (None when there is no camera)."""
    camera_key = estimation_camera(episode, profile)
    declared = family_of(profile)
    if camera_key is None or not profile.objects or declared.meter is None:
        return None
    source = episode.cameras[camera_key]
    measure = declared.meter(adapter, profile.cameras[camera_key], source.height, source.width, profile)
    return FrameObjectMeter(camera_key, measure, symmetric=declared.meter_symmetric)
