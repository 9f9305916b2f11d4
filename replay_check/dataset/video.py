"""Camera frame sources: one episode's segment of an mp4 (PyAV), or images stored in a parquet column.

A v3.0 mp4 holds many episodes back to back, so an episode starts at `from_timestamp` inside the
file. Frames are decoded one at a time from the nearest keyframe before the wanted one and handed
out at once: memory stays at one frame whatever the episode length.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from replay_check.errors import VideoError

# A decoded frame belongs to row i when its pts time is within this of from_timestamp + i / fps
# (the tolerance LeRobot itself uses when it matches query timestamps to decoded frames).
TIMESTAMP_TOLERANCE_S = 1e-4


class VideoFrameSource:
    """Rows [0, length) of one episode inside an mp4 whose row i is shown at from_timestamp + i / fps."""

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float,
        length: int,
        from_timestamp: float = 0.0,
        height: int | None = None,
        width: int | None = None,
    ):
        self.path = Path(path)
        self.fps = float(fps)
        self.length = int(length)
        self.from_timestamp = float(from_timestamp)
        if height is None or width is None:
            height, width = probe_size(self.path)
        self.height = int(height)
        self.width = int(width)

    def timestamp(self, row: int) -> float:
        """Where row `row` of the episode sits in the file, in seconds."""
        return self.from_timestamp + row / self.fps

    def iter_frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """Yield HxWx3 uint8 frames for rows start .. length-1, decoding sequentially."""
        if not 0 <= start <= self.length:
            raise VideoError(
                f"start row {start} is outside the episode's 0..{self.length} rows of {self.path}"
            )
        if start == self.length:
            return
        container = open_video(self.path)
        try:
            yield from self._decode(container, start)
        finally:
            container.close()

    def _decode(self, container, start: int) -> Iterator[np.ndarray]:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        target = self.timestamp(start)
        if target > TIMESTAMP_TOLERANCE_S:
            # Seek lands on the last keyframe at or before the target; earlier frames are skipped below.
            container.seek(
                int(Fraction(target - TIMESTAMP_TOLERANCE_S) / time_base),
                stream=stream,
                backward=True,
                any_frame=False,
            )
        row = start
        for frame in _frames(container, stream, self.path):
            if frame.pts is None:
                continue
            seconds = float(frame.pts * time_base)
            expected = self.timestamp(row)
            if seconds < expected - TIMESTAMP_TOLERANCE_S:
                continue
            if seconds > expected + TIMESTAMP_TOLERANCE_S:
                raise VideoError(
                    f"{self.path}: no frame for row {row} at t={expected:.4f}s "
                    f"(the stream jumps from there to t={seconds:.4f}s)"
                )
            yield frame_to_rgb(frame)
            row += 1
            if row == self.length:
                return
        raise VideoError(
            f"{self.path}: video ends before row {row} of {self.length} "
            f"(no frame at t={self.timestamp(row):.4f}s)"
        )


    @property
    def codec(self) -> str:
        """The video stream's codec as FFmpeg names the format, not the decoder ("av1", "h264", ...)."""
        container = open_video(self.path)
        try:
            return container.streams.video[0].codec_context.codec.canonical_name
        finally:
            container.close()

    def segment_mp4(self) -> tuple[bytes, int]:
        """This episode's packets copied into an MP4 of their own (no re-encoding), and how many frames of it
        come before row 0.

        The copy starts at the keyframe at or before row 0 (so it decodes alone) and ends with the last
        row: a viewer can show the recording exactly as stored, frame t of the copy being row t - skip.
        """
        import av

        container = open_video(self.path)
        buffer = io.BytesIO()
        try:
            stream = container.streams.video[0]
            time_base = stream.time_base
            first, last = self.timestamp(0), self.timestamp(self.length - 1)
            if first > TIMESTAMP_TOLERANCE_S:
                container.seek(int(Fraction(first - TIMESTAMP_TOLERANCE_S) / time_base), stream=stream,
                               backward=True, any_frame=False)
            packets = []
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                if not packets and not packet.is_keyframe:
                    continue
                if float(packet.pts * time_base) > last + TIMESTAMP_TOLERANCE_S:
                    break
                packets.append(packet)
            if not packets:
                raise VideoError(f"{self.path}: no video packets for the episode at t={first:.4f}s")
            skip = sum(float(p.pts * time_base) < first - TIMESTAMP_TOLERANCE_S for p in packets)
            shift = min(p.pts for p in packets)
            with av.open(buffer, "w", format="mp4") as out:
                copy = out.add_stream_from_template(stream, opaque=True)
                for packet in packets:
                    packet.pts -= shift
                    packet.dts = None if packet.dts is None else packet.dts - shift
                    packet.stream = copy
                    out.mux(packet)
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot copy the episode's packets out of {self.path}: {exc}") from exc
        finally:
            container.close()
        return buffer.getvalue(), skip


def _frames(container, stream, path: Path) -> Iterator:
    """Decoded frames, with FFmpeg decode errors turned into a VideoError naming the file."""
    import av

    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot decode video {path}: {_describe(exc)}") from None


# BT.601 (or untagged) limited-range 4:2:0: what LeRobot's AV1/H.264 files hold and what OpenCV's I420
# conversion assumes. Codes: colorspace 2 unspecified, 5 BT470BG, 6 SMPTE170M; range 0 unspecified, 1 MPEG.
_CV2_COLORSPACES = (2, 5, 6)
_CV2_RANGES = (0, 1)


def frame_to_rgb(frame) -> np.ndarray:
    """HxWx3 uint8 RGB of a decoded frame.

    swscale's yuv420p -> rgb24 costs ~2.5 ms at 480x640 here, OpenCV's ~0.3 ms for the same
    BT.601 limited-range conversion (values within 3/255, mean 0.2/255), so the common case
    takes OpenCV and everything else (other formats, BT.709 or full-range tags) takes swscale.
    """
    if (
        frame.format.name == "yuv420p"
        and frame.width % 2 == 0
        and frame.height % 2 == 0
        and frame.colorspace in _CV2_COLORSPACES
        and frame.color_range in _CV2_RANGES
    ):
        import cv2

        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


class EncodedImageFrameSource:
    """Frames stored as PNG/JPEG bytes in a parquet column (LeRobot dtype "image")."""

    def __init__(
        self, images: Sequence[bytes | None], *, height: int, width: int, label: str = "image column"
    ):
        self.images = images
        self.height = int(height)
        self.width = int(width)
        self.label = label

    def iter_frames(self, start: int = 0) -> Iterator[np.ndarray]:
        for row in range(start, len(self.images)):
            yield decode_image(self.images[row], f"{self.label} row {row}")


def decode_image(data: bytes | None, where: str) -> np.ndarray:
    """PNG/JPEG bytes -> HxWx3 uint8 (grey and RGBA are converted)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise VideoError(f"{where}: no image bytes stored")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise VideoError(f"{where}: cannot decode the stored image ({exc})") from exc


def _describe(exc: Exception) -> str:
    """FFmpeg's message without its errno prefix ("[Errno 1094995529] Invalid data ..." -> "Invalid data ...")."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def probe_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of the first video stream, read from the container header."""
    container = open_video(Path(path))
    try:
        context = container.streams.video[0].codec_context
        return int(context.height), int(context.width)
    finally:
        container.close()


def open_video(path: Path):
    """An opened PyAV container with a video stream, or a VideoError naming the file."""
    import av

    if not path.is_file():
        raise VideoError(f"video file {path} does not exist")
    try:
        # Container metadata is only read, never used: undecodable tags must not stop the decode.
        container = av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"cannot open video {path}: {_describe(exc)}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} holds no video stream")
    if container.streams.video[0].codec_context is None:
        container.close()
        raise VideoError(f"{path}: its video stream has a codec FFmpeg cannot decode")
    return container
