"""VideoSink: a side-by-side recorded | replayed | diff MP4 from synthetic steps."""

from __future__ import annotations

import av
import numpy as np
import pytest

from replay_check.errors import ConfigError
from replay_check.steps import StepRecord
from replay_check.video_export import VideoSink, composite

CAM = "observation.images.top"
H, W = 48, 64


def step(t: int, with_images: bool = True, cameras: tuple[str, ...] = (CAM,)) -> StepRecord:
    recorded = np.full((H, W, 3), 200, dtype=np.uint8)
    replayed = recorded.copy()
    replayed[:, : W // 2] = 100  # left half differs by 100 -> diff saturates at 255 (x4)
    frames = {c: recorded for c in cameras} if with_images else {}
    return StepRecord(t=t, timestamp=t / 50, recorded_state=np.zeros(2), replayed_state=np.zeros(2),
                      action=None, replayed_objects={}, recorded_frames=frames,
                      replayed_frames={c: replayed for c in cameras} if with_images else {})


def read_video(path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, float(stream.average_rate)


def test_layout_is_recorded_replayed_diff_and_rows_per_camera():
    frame = composite(step(0), [CAM])
    assert frame.shape == (H, 3 * W, 3)
    assert (frame[:, :W] == 200).all()
    assert (frame[:, W : W + W // 2] == 100).all()
    assert (frame[:, 2 * W : 2 * W + W // 2] == 255).all() and (frame[:, 2 * W + W // 2 :] == 0).all()
    two = composite(step(0, cameras=(CAM, "wrist")), [CAM, "wrist"])
    assert two.shape == (2 * H, 3 * W, 3)
    assert composite(step(1, with_images=False), [CAM]) is None


@pytest.mark.slow
def test_writes_one_frame_per_image_step_at_the_strided_rate(tmp_path):
    path = tmp_path / "out" / "ep0.mp4"
    sink = VideoSink(path, fps=50, cameras=[CAM])
    n, stride = 12, 2
    for t in range(n):
        sink.on_step(step(t, with_images=t % stride == 0), {})
        assert not path.exists()  # appears only when finished
    sink.finish(None)
    assert path.exists() and sink.frames_written == n // stride
    assert list(path.parent.iterdir()) == [path]  # no partial file left behind
    frames, rate = read_video(path)
    assert len(frames) == n // stride
    assert frames[0].shape == (H, 3 * W, 3)
    assert rate == pytest.approx(25.0)
    # the content survives the codec: recorded panel bright, diff panel's right half dark
    assert abs(float(frames[0][:, :W].mean()) - 200) < 6
    assert float(frames[0][:, 2 * W + W // 2 + 4 :].mean()) < 10


def test_single_image_step_and_no_image_steps(tmp_path):
    one = VideoSink(tmp_path / "one.mp4", fps=10, cameras=[CAM])
    one.on_step(step(0), {})
    one.finish(None)
    frames, rate = read_video(tmp_path / "one.mp4")
    assert len(frames) == 1 and rate == pytest.approx(10.0)

    none = VideoSink(tmp_path / "none.mp4", fps=10, cameras=[CAM])
    none.on_step(step(0, with_images=False), {})
    none.finish(None)
    assert not (tmp_path / "none.mp4").exists() and none.frames_written == 0


def test_abort_removes_the_partial_file(tmp_path):
    sink = VideoSink(tmp_path / "a.mp4", fps=10, cameras=[CAM])
    for t in range(3):
        sink.on_step(step(t), {})
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_bad_settings():
    with pytest.raises(ConfigError, match="fps"):
        VideoSink("x.mp4", fps=0, cameras=[CAM])
    with pytest.raises(ConfigError, match="no cameras"):
        VideoSink("x.mp4", fps=10, cameras=[])
