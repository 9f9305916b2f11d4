"""LeRobot datasets: reading (v3.0, v2.x; local or Hub), lazy video frames, and the v3.0 writer."""

from __future__ import annotations

from replay_check.dataset.episode import DatasetMeta, Episode, Feature, FrameSource
from replay_check.dataset.reader import CameraSpec, EpisodeLocation, LeRobotDataset, open_dataset

__all__ = [
    "CameraSpec",
    "DatasetMeta",
    "Episode",
    "EpisodeLocation",
    "Feature",
    "FrameSource",
    "LeRobotDataset",
    "open_dataset",
]
