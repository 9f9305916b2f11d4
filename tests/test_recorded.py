"""RecordedAhead: frames and measurements in step order from a thread, errors raised in the caller, clean stop."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from replay_check.errors import InputError
from replay_check.recorded import RecordedAhead


class FakeFeed:
    """Frame t is filled with t; runs out (InputError, as the real feed) after `frames` frames."""

    def __init__(self, length: int, frames: int | None = None):
        self.length, self.frames, self.closed = length, length if frames is None else frames, False

    def next(self, t, keys):
        if t >= self.frames:
            raise InputError(f"camera 'cam' ran out of frames at frame {t} of {self.length}")
        return {key: np.full((2, 2, 3), t, np.uint8) for key in keys}

    def close(self):
        self.closed = True


def test_frames_and_measurements_arrive_in_step_order_for_the_compared_steps():
    seen = []

    def measure(frame):
        seen.append(int(frame[0, 0, 0]))
        return {"block": int(frame[0, 0, 0])}

    feed = FakeFeed(7)
    ahead = RecordedAhead(feed, lambda t: ["cam"] if t % 2 == 0 else [], "cam", measure, depth=2)
    got = [ahead.next(t) for t in range(7)]
    ahead.close()
    assert [poses for _, poses in got] == [{"block": 0}, None, {"block": 2}, None, {"block": 4}, None, {"block": 6}]
    assert [sorted(frames) for frames, _ in got] == [["cam"], [], ["cam"], [], ["cam"], [], ["cam"]]
    assert seen == [0, 2, 4, 6] and feed.closed


def test_an_error_in_the_thread_is_raised_at_its_step():
    ahead = RecordedAhead(FakeFeed(5, frames=3), lambda t: ["cam"], "cam", None, depth=8)
    for t in range(3):
        frames, poses = ahead.next(t)
        assert int(frames["cam"][0, 0, 0]) == t and poses is None
    with pytest.raises(InputError, match="ran out of frames at frame 3"):
        ahead.next(3)
    ahead.close()


def test_close_stops_a_thread_waiting_on_a_full_queue():
    feed = FakeFeed(1000)
    ahead = RecordedAhead(feed, lambda t: ["cam"], "cam", None, depth=2)
    ahead.next(0)
    ahead.close()
    assert not [t for t in threading.enumerate() if t.name == "replay-check-recorded"] and feed.closed
