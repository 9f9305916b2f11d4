"""Is the recorded video aligned with the state/action rows? Find the frame offset that fits best.

The replay renders what row t's state looks like; if the recorded frames match the rendered ones
better at a shift of d frames than at 0, the video (or its timestamps) is offset by d frames. The
offset is measured on the opening frames, where it shows before the replay can drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from replay_check.divergence import Onset

WINDOW = 16  # opening frames kept (small grayscale thumbnails)
MAX_OFFSET = 5
THUMB_STRIDE = 4


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A cheap grayscale thumbnail (every 4th pixel) for alignment costs."""
    return frame[::THUMB_STRIDE, ::THUMB_STRIDE].mean(axis=2, dtype=np.float32)


@dataclass(frozen=True)
class FrameOffset:
    offset: int  # recorded frame i shows the replayed scene of step i + offset
    cost_aligned: float  # mean abs difference at offset 0 (0-255)
    cost_best: float

    @property
    def significant(self) -> bool:
        """Clearly better than no shift, by a margin above codec noise."""
        gain = self.cost_aligned - self.cost_best
        return self.offset != 0 and self.cost_best < 0.6 * self.cost_aligned and gain > 0.1


def estimate_frame_offset(recorded: Sequence[np.ndarray], replayed: Sequence[np.ndarray],
                          max_offset: int = MAX_OFFSET) -> FrameOffset | None:
    """Best offset d minimising mean |recorded[i] - replayed[i + d]| over the overlapping frames."""
    n = min(len(recorded), len(replayed))
    if n < max_offset + 3:
        return None
    costs = {}
    for d in range(-max_offset, max_offset + 1):
        pairs = [(recorded[i], replayed[i + d]) for i in range(n) if 0 <= i + d < n]
        costs[d] = float(np.mean([np.abs(a - b).mean() for a, b in pairs]))
    best = min(costs, key=lambda d: (costs[d], abs(d)))
    return FrameOffset(best, costs[0], costs[best])


class OffsetOnset(Onset):
    """A divergence at step 0 caused by a misaligned video, described in its own words."""

    def describe(self) -> str:
        return (
            f"{self.group}: the recorded video is offset by {int(self.value):+d} frame(s) from the state/action rows "
            f"(recorded frame i matches the replay at step i{int(self.value):+d}); it diverges from step 0"
        )
