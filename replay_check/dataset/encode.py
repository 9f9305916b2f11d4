"""Streaming AV1 encoding of one camera into one mp4, the way LeRobot v3.0 stores videos.

Frames arrive one at a time and leave for the encoder at once, so memory does not grow with the episode.
One encoder stays open across episodes: episode k's segment starts where episode k-1 ended, and frame n
(counted over the whole file) carries pts n in a 1/fps time base, so it decodes at exactly n / fps.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from replay_check.errors import VideoError

CODEC = "libsvtav1"
PIX_FMT = "yuv420p"
CRF = 30
GOP = 2

# SVT-AV1 prints a banner per encoder on stderr; keep only its errors unless the user asked otherwise.
os.environ.setdefault("SVT_LOG", "1")


def av1_encoder_available() -> bool:
    """Whether PyAV's bundled FFmpeg can encode AV1 with SVT-AV1 (PyAV 18 wheels can)."""
    import av

    return CODEC in av.codecs_available


def video_info(*, height: int, width: int, fps: int) -> dict:
    """The `info` block LeRobot v3.0 puts under a video feature in info.json."""
    return {
        "video.height": height,
        "video.width": width,
        "video.codec": "av1",
        "video.pix_fmt": PIX_FMT,
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": 3,
        "has_audio": False,
    }


class VideoEncoder:
    """Encode HxWx3 uint8 frames to an AV1 mp4, one at a time; frame n is shown at n / fps."""

    def __init__(
        self, path: str | Path, *, fps: int, height: int, width: int, crf: int = CRF, gop: int = GOP
    ):
        import av

        if not av1_encoder_available():
            raise VideoError(
                f"PyAV {av.__version__} has no {CODEC} encoder; expected a PyAV>=14 wheel with SVT-AV1"
            )
        if height % 2 or width % 2:
            raise VideoError(f"frame size {height}x{width} is odd; {PIX_FMT} needs even height and width")
        self.path = Path(path)
        self.fps = int(fps)
        self.height = int(height)
        self.width = int(width)
        self.frames_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._time_base = Fraction(1, self.fps)
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(
            CODEC, rate=self.fps, options={"g": str(gop), "crf": str(crf)}
        )
        self._stream.width = self.width
        self._stream.height = self.height
        self._stream.pix_fmt = PIX_FMT
        self._stream.time_base = self._time_base

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame; it gets the next global frame number as its pts."""
        import av

        if self._container is None:
            raise VideoError(f"encoder for {self.path} is closed; cannot write more frames")
        expected = (self.height, self.width, 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise VideoError(
                f"frame for {self.path.name} is {frame.dtype}{tuple(frame.shape)}; expected uint8{expected}"
            )
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = self._time_base
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and write the mp4 trailer; safe to call twice."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def abort(self) -> None:
        """Close without caring whether the file is usable (used when the writer is being thrown away)."""
        if self._container is None:
            return
        with contextlib.suppress(Exception):  # the file is discarded anyway
            self._container.close()
        self._container = None

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
