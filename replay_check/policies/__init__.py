"""The project's own scripted policies, used by `record` to make datasets with known ground truth."""

from __future__ import annotations

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
