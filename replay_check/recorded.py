"""The recorded side of a replay: an episode's frames in step order and, where it needs no replay, their measurement.

Decoding a recorded frame and measuring the objects in it do not depend on the re-simulation, so
`RecordedAhead` does both in a thread, up to `depth` steps ahead of the comparison, while the main
thread steps physics and renders (PyAV decoding, OpenCV and numpy's array work release the GIL).
The thread handles the frames in step order with the same meter, so what it returns is what the
serial `FrameFeed` plus the meter would give, bit for bit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from replay_check.dataset.episode import Episode
from replay_check.errors import InputError

# frame -> measured poses (the family's ObjectMeasure)
Measure = Callable[[np.ndarray], Any]


class FrameFeed:
    """Recorded frames in step order: every frame is decoded (sources are sequential), compared ones kept."""

    def __init__(self, episode: Episode, cameras: Sequence[str]):
        self.streams: dict[str, Iterator[np.ndarray]] = {
            key: iter(episode.cameras[key].iter_frames(0)) for key in cameras}
        self.length = episode.length

    def next(self, t: int, keys: Sequence[str]) -> dict[str, np.ndarray]:
        frames: dict[str, np.ndarray] = {}
        for key, stream in self.streams.items():
            frame = next(stream, None)
            if frame is None:
                raise InputError(f"camera {key!r} ran out of frames at frame {t} of {self.length}")
            if key in keys:
                frames[key] = frame
        return frames

    def close(self) -> None:
        for stream in self.streams.values():
            close = getattr(stream, "close", None)
            if close is not None:
                close()


class RecordedAhead:
    """Decodes and measures recorded frames in a thread, at most `depth` steps ahead of `next`.

    `keys(t)` names the cameras compared at step t; `measure` runs on `camera`'s frame whenever that
    camera is compared. `next(t)` returns (frames, measured poses or None), in step order; an error in
    the thread is raised there. `close` stops the thread (also when the replay ends early).
    """

    def __init__(self, feed: FrameFeed, keys: Callable[[int], Sequence[str]], camera: str | None,
                 measure: Measure | None, depth: int = 8):
        self.feed, self.keys, self.camera, self.measure = feed, keys, camera, measure
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self.spent = {"decode": 0.0, "objects": 0.0}  # the thread's wall seconds per phase
        self._thread = threading.Thread(target=self._run, name="replay-check-recorded", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for t in range(self.feed.length):
                start = time.perf_counter()
                frames = self.feed.next(t, self.keys(t))
                decoded = time.perf_counter()
                poses = None
                if self.measure is not None and self.camera in frames:
                    poses = self.measure(frames[self.camera])
                self.spent["decode"] += decoded - start
                self.spent["objects"] += time.perf_counter() - decoded
                if not self._put((t, frames, poses, None)):
                    return
        except BaseException as exc:  # handed to the main thread, which raises it
            self._put((None, None, None, exc))
        finally:
            self.feed.close()

    def next(self, t: int) -> tuple[dict[str, np.ndarray], Any]:
        done, frames, poses, error = self._queue.get()
        if error is not None:
            self._stop.set()
            raise error
        if done != t:
            raise RuntimeError(f"recorded frames of step {done} arrived for step {t}")
        return frames, poses

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
