"""2-D overlays drawn over camera images in the Rerun recording (what the sim and the recording show).

PushT: the T outline and the agent, recorded (from environment_state or the image estimate) vs
replayed, in image pixels. Outlines come from the block pose, so a few pixels of drift are visible
even where the 96x96 image hides them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from replay_check.sims.pusht_geometry import keypoints_from_pose
from replay_check.steps import StepRecord

ARENA_PX = 512.0


def pusht_overlay(height: int, width: int) -> Callable[[StepRecord], dict[str, dict[str, list[np.ndarray]]]]:
    """An overlay for a PushT camera of the given size (the arena spans the whole image)."""
    scale = np.array([width / ARENA_PX, height / ARENA_PX])

    def shapes(step: StepRecord) -> dict[str, dict[str, list[np.ndarray]]]:
        out: dict[str, dict[str, list[np.ndarray]]] = {}
        sources = (
            ("recorded", step.recorded_objects, step.recorded_object_angles, step.recorded_state),
            ("replayed", step.replayed_objects, step.replayed_object_angles, step.replayed_state),
        )
        for source, positions, angles, agent in sources:
            parts: dict[str, list[np.ndarray]] = {"points": [np.asarray(agent[:2], dtype=float) * scale]}
            block = (positions or {}).get("block")
            angle = (angles or {}).get("block")
            if block is not None and angle is not None:
                corners = keypoints_from_pose(block[0], block[1], angle).reshape(8, 2) * scale
                bar, stem = corners[:4], corners[4:]
                parts["outline"] = [np.vstack([bar, bar[:1]]), np.vstack([stem, stem[:1]])]
            out[source] = parts
        return out

    return shapes
