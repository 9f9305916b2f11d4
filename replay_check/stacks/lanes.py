"""Other stacks' replays inside the first stack's Rerun recording: `replayed/<stack>/<camera>` beside
`recorded/<camera>`, and `errors/<stack>/...` and `joints/<name>/<stack>` series.

A `LaneRecorder` rides along a stack's replay and keeps what the recording needs in little memory
(frames as JPEG, a few floats per step); a `LaneSink` is then given to the first stack's replay, binds
to its RerunSink and logs every lane at the step it belongs to, so one recording holds every stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from replay_check.steps import ReplayResult, StepRecord


@dataclass
class LaneRecorder:
    """A sink keeping one stack's replayed frames (JPEG) and states, and its metric columns at the end."""

    stack: str
    jpeg_quality: int = 75
    frames: dict[int, dict[str, bytes]] = field(default_factory=dict)
    states: dict[int, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None:
        import cv2

        self.states[step.t] = np.asarray(step.replayed_state, dtype=np.float64).copy()
        if step.replayed_frames:
            encoded = {}
            for camera, frame in step.replayed_frames.items():
                ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]),
                                        [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if ok:
                    encoded[camera] = data.tobytes()
            self.frames[step.t] = encoded

    def finish(self, result: ReplayResult) -> None:
        self.metrics = {k: np.asarray(v, dtype=np.float64) for k, v in result.metrics.items()}

    def abort(self) -> None:
        self.frames.clear()


class LaneSink:
    """Logs recorded lanes into the RerunSink it is bound to (the pipeline binds it); put it before that sink."""

    def __init__(self, lanes: list[LaneRecorder], state_names: list[str] | None = None):
        self.lanes = lanes
        self.state_names = state_names
        self.rerun = None

    def bind(self, rerun_sink) -> None:
        self.rerun = rerun_sink
        if rerun_sink is not None:
            self._send_blueprint()

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None:
        if self.rerun is None:
            return
        import rerun as rr

        from replay_check.viz import part

        rec = self.rerun.rec
        for lane in self.lanes:
            frames = lane.frames.get(step.t)
            if not frames:
                continue
            rec.set_time("frame_index", sequence=int(step.t))
            rec.set_time("timestamp", duration=float(step.timestamp))
            for camera, data in frames.items():
                rec.log(f"replayed/{part(lane.stack)}/{part(camera)}", rr.EncodedImage(contents=data,
                                                                                      media_type="image/jpeg"))

    def finish(self, result: ReplayResult) -> None:
        """Send each lane's error and joint series in one go (before the RerunSink closes the recording)."""
        if self.rerun is None:
            return
        import rerun as rr

        from replay_check.viz import part

        rec = self.rerun.rec
        names = self.state_names or [f"state_{i}" for i in range(result.initial_state.robot.shape[0])]
        for lane in self.lanes:
            stack = part(lane.stack)
            for column, values in lane.metrics.items():
                t = np.flatnonzero(np.isfinite(values))
                if t.size and not column.startswith(("reward", "success", "recorded_", "unstable")):
                    self._send(rec, rr, f"errors/{stack}/" + "/".join(part(p) for p in column.split("/")), t,
                               values[t], result.meta.fps)
            if lane.states:
                t = np.asarray(sorted(lane.states), dtype=np.int64)
                states = np.stack([lane.states[i] for i in t])
                for j, name in enumerate(names[: states.shape[1]]):
                    self._send(rec, rr, f"joints/{part(name)}/{stack}", t, states[:, j], result.meta.fps)

    @staticmethod
    def _send(rec, rr, path: str, t: np.ndarray, values: np.ndarray, fps: float) -> None:
        from replay_check.viz import time_columns

        rec.send_columns(path, indexes=time_columns(t, t / float(fps)), columns=rr.Scalars.columns(scalars=values))

    def _send_blueprint(self) -> None:
        """The default layout plus one row of other stacks' replayed images per camera."""
        import rerun.blueprint as rrb

        from replay_check.viz import part

        sink = self.rerun
        if not sink.cameras:
            return
        rows = [rrb.Horizontal(*[rrb.Spatial2DView(origin=f"/replayed/{part(lane.stack)}/{part(c)}",
                                                    name=f"replayed on {lane.stack} {c}") for lane in self.lanes],
                               rrb.Spatial2DView(origin=f"/recorded/{part(c)}", name=f"recorded {c}"))
                for c in sink.cameras]
        base = sink.blueprint.root_container
        sink.rec.send_blueprint(rrb.Blueprint(rrb.Vertical(base, *rows), collapse_panels=True))

    def abort(self) -> None:
        pass
