"""A planar simulator's scene in the Rerun recording: recorded vs replayed shapes in arena coordinates.

For families whose simulator is 2-D (PushT on pymunk: no MuJoCo model to read), the family's image
overlay drawn at arena scale is the scene: the T block's outline and the agent, recorded (green) and
replayed (red), logged per step under scene2d/<source>. Unlike the overlay on the 96x96 camera image it
does not depend on a camera, so state-only datasets (pusht_keypoints) get it too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import rerun as rr

COLORS = {"recorded": (40, 200, 40), "replayed": (230, 40, 40)}
AGENT_RADIUS = 15.0  # gym-pusht's agent circle (arena px)


class PlanarSceneRecorder:
    """Logs each step's shapes (from `shapes(step)`, arena units) to scene2d/; one view for the blueprint."""

    wants_body_poses = False

    def __init__(self, shapes: Callable, arena: float):
        self.shapes = shapes
        self.arena = float(arena)
        self._started = False

    def views(self) -> list:
        import rerun.blueprint as rrb

        return [rrb.Spatial2DView(name="2-D scene: recorded (green) vs replayed (red)", origin="/scene2d")]

    def on_step(self, step, rec: rr.RecordingStream | None = None) -> None:
        if rec is None:
            return
        if not self._started:
            a = self.arena
            rec.log("scene2d/arena", rr.LineStrips2D([[[0, 0], [a, 0], [a, a], [0, a], [0, 0]]],
                                                     colors=[(120, 120, 120)]), static=True)
            self._started = True
        for source, parts in self.shapes(step).items():
            color = COLORS.get(source, (200, 200, 200))
            outline = parts.get("outline", [])
            if outline:
                rec.log(f"scene2d/{source}/block", rr.LineStrips2D(outline, colors=color, radii=1.5))
            points = parts.get("points", [])
            if points:
                rec.log(f"scene2d/{source}/agent", rr.Points2D(np.asarray(points), colors=color, radii=AGENT_RADIUS))

    def finish(self, rec: rr.RecordingStream, indexes: list) -> None:
        del rec, indexes  # everything was logged per step
