"""The project's own scripted policies, used by `record` to make datasets with known ground truth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass
class RecordedFrame:
    """One dataset row as a scripted rollout produces it (observation before `action`, and `action`)."""

    state: np.ndarray
    action: np.ndarray
    environment_state: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)  # dataset camera key -> HxWx3 uint8
    reward: float = 0.0  # reward after the action (lerobot's next.reward)
    success: bool = False  # success after the action (next.success)


@dataclass(frozen=True)
class EnvSpec:
    """How one `record --env` is recorded: rollout, dataset layout and the task text of its public datasets."""

    name: str
    fps: int
    robot_type: str
    task: str
    default_steps: int
    features: dict[str, dict]
    env_state_names: list[str]
    rollout: Callable[[int, int, bool], Iterator[RecordedFrame]]  # (seed, steps, render) -> rows


def scalar_feature(dtype: str) -> dict:
    """An info.json feature of one value per frame (next.reward, next.success, next.done)."""
    return {"dtype": dtype, "shape": [1], "names": None}
