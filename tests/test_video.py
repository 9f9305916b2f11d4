"""Frame sources: the right frames of one episode's segment, and clear errors when a video falls short."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from replay_check.dataset.video import (
    EncodedImageFrameSource,
    VideoFrameSource,
    decode_image,
    frame_to_rgb,
    probe_size,
)
from replay_check.errors import VideoError
from tests.dataset_factory import frame_value, write_video

FPS = 10
SIZE = (32, 48)
# Three episodes back to back in one file, as LeRobot v3.0 stores them: 7, 9 and 5 frames.
SEGMENTS = [(0, 7), (1, 9), (2, 5)]


def _levels(frames: list[np.ndarray]) -> list[int]:
    return [int(round(float(f.mean()))) for f in frames]


@pytest.fixture(scope="module")
def shared_mp4(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "file-000.mp4", SEGMENTS, FPS, SIZE, gop=4)


def test_segment_in_middle_of_file_yields_exactly_its_frames(shared_mp4: Path):
    source = VideoFrameSource(shared_mp4, fps=FPS, length=9, from_timestamp=0.7, height=32, width=48)
    frames = list(source.iter_frames())
    assert len(frames) == 9
    assert all(f.shape == (32, 48, 3) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_allclose(_levels(frames), [frame_value(1, r) for r in range(9)], atol=3)


def test_start_row_seeks_past_keyframes_to_the_same_frames(shared_mp4: Path):
    source = VideoFrameSource(shared_mp4, fps=FPS, length=9, from_timestamp=0.7)
    whole = _levels(list(source.iter_frames()))
    for start in (1, 5, 8):
        assert _levels(list(source.iter_frames(start))) == whole[start:]
    assert list(source.iter_frames(9)) == []


def test_last_segment_and_size_probe(shared_mp4: Path):
    source = VideoFrameSource(shared_mp4, fps=FPS, length=5, from_timestamp=1.6)
    assert (source.height, source.width) == SIZE == probe_size(shared_mp4)
    np.testing.assert_allclose(
        _levels(list(source.iter_frames())), [frame_value(2, r) for r in range(5)], atol=3
    )


def test_missing_file_names_the_file(tmp_path: Path):
    source = VideoFrameSource(tmp_path / "nope.mp4", fps=FPS, length=3, height=2, width=2)
    with pytest.raises(VideoError, match="nope.mp4"):
        next(source.iter_frames())


def test_video_shorter_than_episode_names_row_and_time(shared_mp4: Path):
    source = VideoFrameSource(shared_mp4, fps=FPS, length=7, from_timestamp=1.6)
    frames = []
    with pytest.raises(VideoError, match=r"file-000\.mp4.*row 5 of 7.*t=2\.1000s"):
        frames.extend(source.iter_frames())
    assert len(frames) == 5  # every frame that exists was handed out before the error


def test_stream_jumping_past_a_row_is_an_error(tmp_path: Path):
    path = write_video(tmp_path / "gap.mp4", [(0, 6)], FPS, SIZE, dropped={(0, 3)})
    source = VideoFrameSource(path, fps=FPS, length=6)
    with pytest.raises(VideoError, match=r"row 3 at t=0\.3000s.*jumps.*t=0\.4000s"):
        list(source.iter_frames())


def test_bad_start_row_is_rejected(shared_mp4: Path):
    with pytest.raises(VideoError, match="start row 10"):
        next(VideoFrameSource(shared_mp4, fps=FPS, length=9, from_timestamp=0.7).iter_frames(10))


def _bt601_limited_to_rgb(yuv: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float reference: I420 planes, BT.601 limited range, chroma repeated 2x2."""
    y = yuv[:height].astype(float)
    u, v = (
        p.reshape(height // 2, width // 2).repeat(2, 0).repeat(2, 1).astype(float) - 128
        for p in (yuv[height : height * 5 // 4], yuv[height * 5 // 4 :])
    )
    c, d, e = (y - 16) * 255 / 219, u * 255 / 224, v * 255 / 224
    return np.clip(np.stack([c + 1.402 * e, c - 0.344136 * d - 0.714136 * e, c + 1.772 * d], -1), 0, 255)


def test_fast_rgb_conversion_is_exact_bt601_and_close_to_swscale():
    """The OpenCV path rounds the BT.601 conversion (swscale's fast path truncates, ~1 level lower)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    fast = frame_to_rgb(frame)
    assert fast.shape == (48, 64, 3) and fast.dtype == np.uint8
    assert np.abs(fast - _bt601_limited_to_rgb(frame.to_ndarray(), 48, 64)).max() < 1.0
    assert np.abs(fast.astype(int) - frame.to_ndarray(format="rgb24")).max() <= 4


def test_av1_file_like_lerobot_decodes(tmp_path: Path):
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this PyAV build has no SVT-AV1 encoder")
    path = write_video(tmp_path / "av1.mp4", [(0, 3), (1, 4)], FPS, (64, 64), codec="libsvtav1")
    source = VideoFrameSource(path, fps=FPS, length=4, from_timestamp=0.3)
    np.testing.assert_allclose(
        _levels(list(source.iter_frames())), [frame_value(1, r) for r in range(4)], atol=3
    )


def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_encoded_images_decode_to_rgb_from_any_start():
    frames = [np.full((4, 6, 3), 10 * i, dtype=np.uint8) for i in range(4)]
    source = EncodedImageFrameSource([_encoded(f, "PNG") for f in frames], height=4, width=6)
    decoded = list(source.iter_frames(1))
    assert len(decoded) == 3
    for got, want in zip(decoded, frames[1:], strict=True):
        np.testing.assert_array_equal(got, want)


def test_grey_and_rgba_images_become_rgb_and_junk_is_an_error():
    grey = decode_image(_encoded(np.full((3, 5), 7, dtype=np.uint8), "PNG"), "grey")
    rgba = decode_image(_encoded(np.full((3, 5, 4), 9, dtype=np.uint8), "PNG"), "rgba")
    assert grey.shape == rgba.shape == (3, 5, 3)
    assert grey.dtype == np.uint8 and int(grey[0, 0, 0]) == 7
    with pytest.raises(VideoError, match="row 3"):
        decode_image(b"not an image", "row 3")
    with pytest.raises(VideoError, match="no image bytes"):
        decode_image(None, "row 4")


def test_segment_copy_holds_exactly_the_episode_frames_from_a_keyframe(shared_mp4: Path):
    source = VideoFrameSource(shared_mp4, fps=FPS, length=9, from_timestamp=0.7)
    data, skip = source.segment_mp4()
    assert 0 <= skip < 4  # the copy starts at the keyframe at or before row 0 (every <= 4 frames)
    with av.open(io.BytesIO(data)) as copy:
        frames = [frame_to_rgb(frame) for frame in copy.decode(video=0)]
    assert len(frames) == skip + 9
    for mine, theirs in zip(frames[skip:], source.iter_frames(), strict=True):
        assert np.array_equal(mine, theirs)  # the same packets, so the same pixels
    assert source.codec == "h264"
