"""The recorded, replayed and diff frames at the first divergence, for report.md.

Which step diverges first is known only after the replay (a divergence needs k steps in a row), so
this sink keeps every compared frame pair JPEG-compressed (~40 KB each at 480x640) and, once the
result is known, writes the pair nearest the first divergence as PNGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from replay_check.steps import ReplayResult, StepRecord

JPEG_QUALITY = 90


def _encode(frame: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("could not JPEG-encode a frame")
    return data.tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # BGR, as cv2.imwrite wants


class FrameCapture:
    """A Sink keeping compared frames until the first divergence is known."""

    def __init__(self) -> None:
        self._frames: dict[int, dict[str, tuple[bytes, bytes]]] = {}

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None:
        if step.recorded_frames:
            self._frames[step.t] = {key: (_encode(frame), _encode(step.replayed_frames[key]))
                                    for key, frame in step.recorded_frames.items() if key in step.replayed_frames}

    def finish(self, result: ReplayResult) -> None:
        pass

    def write(self, result: ReplayResult, folder: Path) -> tuple[dict[str, Any] | None, dict[str, Path]]:
        """PNG files for the compared step nearest the first divergence: (report entry, {name: path})."""
        first = result.verdict.first_divergence_step
        if first is None or not self._frames:
            return None, {}
        step = min(self._frames, key=lambda t: (abs(t - first), t < first))
        images, files = {}, {}
        for key, (recorded, replayed) in self._frames[step].items():
            rec, rep = _decode(recorded), _decode(replayed)
            diff = np.abs(rec.astype(np.int16) - rep.astype(np.int16)).astype(np.uint8)
            diff = np.clip(diff.astype(np.float32) * 4.0, 0, 255).astype(np.uint8)  # x4 so small differences show
            camera = key.rsplit(".", 1)[-1]
            names = {}
            for kind, image in (("recorded", rec), ("replayed", rep), ("diff", diff)):
                name = f"divergence_{camera}_{kind}.png"
                path = Path(folder) / name
                cv2.imwrite(str(path), image)
                files[name] = path
                names[kind] = name
            images[key] = names
        self._frames.clear()
        return {"step": step, "first_divergence_step": first, "diff_gain": 4, "images": images}, files
