"""The shared-memory frame pool and the wire format (numpy-version-neutral arrays, frames by slot)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from replay_check.worker import wire
from replay_check.worker.shm import FramePool, PoolFull


def test_write_read_release_roundtrip():
    pool = FramePool.create(480 * 640 * 3, slots=2)
    try:
        frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        handle = pool.write(frame)
        assert pickle.loads(pickle.dumps(handle)) == handle and pool.in_use() == 1
        view = pool.read(handle, copy=False)
        assert np.array_equal(view, frame) and pool.in_use() == 1
        del view
        pool.release(handle)
        assert pool.in_use() == 0
        copy = pool.read(pool.write(frame))
        assert np.array_equal(copy, frame) and pool.in_use() == 0  # a copy frees its slot at once
    finally:
        pool.close()


def test_a_full_pool_raises_and_oversized_frames_are_refused():
    pool = FramePool.create(100, slots=2)
    try:
        pool.write(np.zeros(10))
        pool.write(np.zeros(10))
        with pytest.raises(PoolFull):
            pool.write(np.zeros(10), timeout=0.01)
        with pytest.raises(ValueError, match="does not fit"):
            pool.write(np.zeros(1000))
    finally:
        pool.close()


def test_another_process_reads_what_this_one_wrote():
    pool = FramePool.create(4096, slots=2)
    try:
        handle = pool.write(np.arange(512, dtype=np.float64))
        name, slots, size = pool.describe()
        code = (f"from replay_check.worker.shm import FramePool, SlotHandle; p = FramePool.attach({name!r}, {slots}, "
                f"{size}); a = p.read(SlotHandle({name!r}, {handle.slot}, {handle.shape}, {handle.dtype!r})); "
                "print(a.sum()); p.close()")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert float(out.stdout) == np.arange(512).sum() and pool.in_use() == 0
        assert "leaked" not in out.stderr  # attaching does not hand the segment to the child's tracker
    finally:
        pool.close()


def test_wire_carries_arrays_without_numpy_pickles_and_frames_by_slot():
    payload = {"state": np.arange(14.0), "scalar": np.float32(2.5), "frame": np.ones((256, 256, 3), np.uint8)}
    raw = wire.dumps(payload)
    assert b"numpy" not in raw.replace(b"replay_check.worker.wire", b"")  # loadable under numpy 1 and 2
    back = wire.loads(raw)
    assert np.array_equal(back["state"], payload["state"]) and back["scalar"] == np.float32(2.5)
    pool = FramePool.create(256 * 256 * 3, slots=2)
    wire.register_pool(pool)
    try:
        raw = wire.dumps(payload, pool)
        assert len(raw) < 10_000  # the 196 kB frame went through shared memory
        assert np.array_equal(wire.loads(raw)["frame"], payload["frame"]) and pool.in_use() == 0
    finally:
        wire.unregister_pool(pool)
        pool.close()


def test_pools_made_from_many_threads_at_once_never_start_the_resource_tracker():
    """Render workers start from one thread each; the tracker stand-ins must not be restored out of order."""
    code = """
import threading
from multiprocessing import resource_tracker
from replay_check.worker.shm import FramePool
register, unregister = resource_tracker.register, resource_tracker.unregister
def churn():
    for _ in range(30):
        pool = FramePool.create(4096, slots=2)
        pool.unlink()
        pool.close()
threads = [threading.Thread(target=churn) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(resource_tracker._resource_tracker._pid, resource_tracker.register is register,
      resource_tracker.unregister is unregister)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["None", "True", "True"], out.stdout + out.stderr
    assert "leaked" not in out.stderr
