"""The recorded, replayed and diff frames at the first divergence, for report.md.

Which step diverges first is known only after the replay (a divergence needs k steps in a row), and
on most runs none does. So during the replay this keeps, per compared step, only what reproduces its
frames exactly: the simulator's snapshot (a small float vector; `render_snapshot` of it is the frame
the comparison used, bit for bit, which the render workers rely on too) and which cameras it compared
(the recorded frame is row t of the episode's camera source, decoded again). Only a run that diverges
renders and decodes once more, and its PNGs are the compared frames themselves, not lossy copies.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from replay_check.dataset.episode import FrameSource
from replay_check.errors import OutputError
from replay_check.metrics import diff_image
from replay_check.steps import ReplayResult, SinkContext, StepRecord

DIFF_GAIN = 4  # |recorded - replayed| x4, so small differences show


def recorded_frame(source: FrameSource, t: int) -> np.ndarray:
    """Row t of a camera source: what the comparison's sequential decode gave at step t (sources seek to it)."""
    frames = source.iter_frames(t)
    try:
        frame = next(iter(frames), None)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # a video source closes its container
    if frame is None:
        raise RuntimeError(f"the recorded camera has no row {t}, which the replay compared")
    return frame


class FrameCapture:
    """A Sink and an engine probe: snapshots of the compared steps, the frames nearest the first divergence at the end.

    As a probe (`reads` = the snapshot, so a render worker that steps the physics returns it with its
    frames) it keeps the snapshot of every step whose frames may be compared; as a sink it notes the
    steps that were compared and with which cameras.
    """

    reads = ("snapshot",)

    def __init__(self, physics: dict[str, float] | None = None) -> None:
        self.physics = dict(physics or {})  # the replay adapter's SimSpec.physics, for an adapter built here
        self._context: SinkContext | None = None
        self._snapshots: dict[int, np.ndarray] = {}
        self._compared: dict[int, tuple[str, ...]] = {}

    def start(self, context: SinkContext) -> None:
        self._context = context
        self._snapshots.clear()
        self._compared.clear()

    def __call__(self, t: int, sim: Any) -> None:
        """Probe: after step t, keep its snapshot when its frames are compared (every image-stride-th step)."""
        context = self._context
        if context is not None and context.cameras and t % context.settings.image_stride == 0:
            self._snapshots[t] = np.asarray(sim.snapshot(), dtype=np.float64)

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None:
        keys = tuple(key for key in step.recorded_frames if key in step.replayed_frames)
        if keys:
            self._compared[step.t] = keys

    def finish(self, result: ReplayResult) -> None:
        pass

    def abort(self) -> None:
        self._snapshots.clear()
        self._compared.clear()

    def nearest_step(self, result: ReplayResult) -> int | None:
        """The compared step nearest the first divergence (the later one on a tie), or None when none diverged."""
        first = result.verdict.first_divergence_step
        if first is None or not self._compared:
            return None
        return min(self._compared, key=lambda t: (abs(t - first), t < first))

    def frames(self, t: int, adapter: Any = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(camera key, recorded, replayed) of compared step t: the source's row t and the render of its snapshot.

        `adapter` renders the snapshot (the replay's own, when still open); None builds one for the
        episode here and closes it after (in this process: a GL context on ALOHA).
        """
        context = self._context
        if context is None or t not in self._snapshots:
            raise RuntimeError(f"FrameCapture has no snapshot of step {t}: pass it to replay_episode as a probe too")
        with contextlib.ExitStack() as stack:
            if adapter is None:
                from replay_check.replay import adapter_for

                adapter = adapter_for(context.episode, context.profile, self.physics)
                stack.callback(adapter.close)
            return [(key, recorded_frame(context.episode.cameras[key], t),
                     adapter.render_snapshot(context.profile.cameras[key], self._snapshots[t]))
                    for key in self._compared[t]]

    def write(self, result: ReplayResult, folder: Path, adapter: Any = None
              ) -> tuple[dict[str, Any] | None, dict[str, Path]]:
        """PNG files of the compared step nearest the first divergence: (report entry, {name: path}).

        Nothing is rendered or written when no step diverged. `adapter` as for `frames`.
        """
        step = self.nearest_step(result)
        if step is None:
            return None, {}
        images, files = {}, {}
        for key, recorded, replayed in self.frames(step, adapter):
            camera = key.rsplit(".", 1)[-1]
            names = {}
            diff = diff_image(recorded, replayed, gain=DIFF_GAIN)
            for kind, image in (("recorded", recorded), ("replayed", replayed), ("diff", diff)):
                name = f"divergence_{camera}_{kind}.png"
                path = Path(folder) / name
                if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                    raise OutputError(f"{path}: cannot write the frame at the first divergence")
                files[name] = path
                names[kind] = name
            images[key] = names
        self._snapshots.clear()
        self._compared.clear()
        return {"step": step, "first_divergence_step": result.verdict.first_divergence_step, "diff_gain": DIFF_GAIN,
                "images": images}, files
