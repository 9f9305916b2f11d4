"""A content fingerprint of one episode: what a reused report must have been computed from.

Paths, sizes and mtimes say nothing about content (a dataset re-recorded in place keeps them), so
the fingerprint hashes what the replay consumes: the dataset metadata that shapes it (version, fps,
features), the episode's rows as the reader returned them, and for each camera the compressed
packets of the episode's own segment of the mp4 (demuxed, not decoded: a 500-step episode costs a
few milliseconds, see scripts/benchmark_fingerprint.py) or its stored image bytes. Episodes sharing a
v3.0 file do not change each other's fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from replay_check.dataset.episode import Episode
from replay_check.dataset.video import EncodedImageFrameSource, VideoFrameSource, open_video
from replay_check.errors import VideoError

# Packets whose pts lies this far past the segment's end are still read: a container may
# interleave a few out of order, so the scan stops only once it is clearly past the end.
_SCAN_PAST_END_S = 1.0
_TOLERANCE_S = 1e-4


def episode_fingerprint(episode: Episode) -> str:
    """sha256 (hex) of the episode's metadata, rows and camera segments."""
    digest = hashlib.sha256()
    meta = episode.meta
    features = {k: [f.dtype, list(f.shape), list(f.names or ())] for k, f in sorted(meta.features.items())}
    header = {"version": meta.codebase_version, "fps": meta.fps, "features": features,
              "episode": episode.index, "task": episode.task}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name in ("timestamps", "state", "action", "environment_state", "reward", "success", "done"):
        _update_array(digest, name, getattr(episode, name))
    for key in sorted(episode.cameras):
        digest.update(f"camera {key}\0".encode())
        _update_camera(digest, episode.cameras[key], episode.length)
    return digest.hexdigest()


def _update_array(digest, name: str, values: np.ndarray | None) -> None:
    if values is None:
        digest.update(f"{name} none\0".encode())
        return
    array = np.ascontiguousarray(values)
    digest.update(f"{name} {array.dtype.str} {array.shape}\0".encode())
    digest.update(array.tobytes())


def _update_camera(digest, source, length: int) -> None:
    if isinstance(source, VideoFrameSource):
        start = source.from_timestamp
        _update_video_segment(digest, source.path, start, start + length / source.fps)
        return
    if not isinstance(source, EncodedImageFrameSource):
        raise TypeError(f"cannot fingerprint frame source {type(source).__name__}")
    for data in source.images:
        digest.update(len(data or b"").to_bytes(8, "little"))
        digest.update(data or b"")


def _update_video_segment(digest, path: Path, start: float, end: float) -> None:
    """Hash the stream header and every packet from the keyframe before `start` to the last before `end`."""
    import av

    container = open_video(path)
    try:
        stream = container.streams.video[0]
        context = stream.codec_context
        digest.update(f"{context.name} {context.width}x{context.height} {stream.time_base}\0".encode())
        digest.update(bytes(context.extradata or b""))
        time_base = stream.time_base
        if start > _TOLERANCE_S:
            container.seek(int(Fraction(start - _TOLERANCE_S) / time_base), stream=stream, backward=True,
                           any_frame=False)
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            seconds = float(packet.pts * time_base)
            if seconds > end + _SCAN_PAST_END_S:
                break
            if seconds < end - _TOLERANCE_S:
                digest.update(int(packet.pts).to_bytes(8, "little", signed=True))
                digest.update(bytes(packet))
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot read video {path}: {exc.strerror or exc}") from None
    finally:
        container.close()
