"""A side-by-side MP4 of a replay: recorded | replayed | |diff| x4, one row per camera, no text.

Frames stream to ffmpeg (libx264 through imageio-ffmpeg) as steps arrive; only steps that carry
images are written, and the frame rate follows the image stride so the video plays in real time.
The file appears under its final name only when finish() succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from replay_check.errors import ConfigError
from replay_check.steps import ReplayResult, StepRecord
from replay_check.viz import diff_for_view


def _even(n: int) -> int:
    return n + (n % 2)


def _pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Black-pad on the bottom/right to height x width (yuv420p needs even sizes; rows may differ)."""
    out = np.zeros((height, width, 3), dtype=np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    out[:h, :w] = image[:h, :w]
    return out


def _rgb8(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame[..., :3]


def side_by_side(recorded: np.ndarray | None, replayed: np.ndarray | None) -> np.ndarray | None:
    """recorded | replayed | diff for one camera (black where a side is missing); None if both are."""
    if recorded is None and replayed is None:
        return None
    rec = None if recorded is None else _rgb8(recorded)
    rep = None if replayed is None else _rgb8(replayed)
    h, w = (rec if rec is not None else rep).shape[:2]
    blank = np.zeros((h, w, 3), dtype=np.uint8)
    both = rec is not None and rep is not None and rec.shape == rep.shape
    diff = diff_for_view(rec, rep) if both else blank
    return np.concatenate([_pad(x if x is not None else blank, h, w) for x in (rec, rep, diff)], axis=1)


def composite(step: StepRecord, cameras: Sequence[str]) -> np.ndarray | None:
    """One video frame for a step: a side-by-side row per camera, stacked; None if the step has no images."""
    rows = [side_by_side(step.recorded_frames.get(c), step.replayed_frames.get(c)) for c in cameras]
    rows = [r for r in rows if r is not None]
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    return np.concatenate([_pad(r, r.shape[0], width) for r in rows], axis=0)


class VideoSink:
    """A Sink writing recorded | replayed | diff frames to an MP4 (atomic: temp file renamed at finish)."""

    def __init__(self, path: Path, *, fps: float, cameras: Sequence[str], crf: int = 23) -> None:
        if fps <= 0:
            raise ConfigError(f"video fps must be > 0, got {fps}")
        if not cameras:
            raise ConfigError("VideoSink was given no cameras; expected at least one dataset camera key")
        self.path = Path(path)
        self.fps = float(fps)
        self.cameras = list(cameras)
        self.crf = crf
        self.frames_written = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._pending: tuple[int, np.ndarray] | None = None  # the first frame, held until the stride is known

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None:
        frame = composite(step, self.cameras)
        if frame is None:
            return
        if self._writer is None:
            if self._pending is None:
                self._pending = (step.t, frame)
                return
            first_t, first = self._pending
            self._open(fps=self.fps / max(1, step.t - first_t), shape=first.shape)
            self._pending = None
            self._write(first)
        self._write(frame)

    def finish(self, result: ReplayResult) -> None:
        """Flush the last frames and move the video to its final name."""
        if self._pending is not None:
            self._open(fps=self.fps, shape=self._pending[1].shape)
            self._write(self._pending[1])
            self._pending = None
        if self._writer is None:
            return  # no step carried images: nothing to show, no file
        self._writer.close()
        self._writer = None
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Stop writing and remove the partial file (for a replay that failed midway)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def _open(self, *, fps: float, shape: tuple[int, ...]) -> None:
        import imageio.v2 as imageio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._size = (_even(shape[0]), _even(shape[1]))
        self._writer = imageio.get_writer(
            self._tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-crf", str(self.crf), "-preset", "veryfast", "-movflags", "+faststart"],
        )

    def _write(self, frame: np.ndarray) -> None:
        height, width = self._size
        if frame.shape[:2] != (height, width):
            frame = _pad(frame, height, width)
        self._writer.append_data(frame)
        self.frames_written += 1
