"""Messages between the main process and a simulator worker: pickle, minus numpy's own array pickles.

Both ends may run different numpy majors (a numpy < 2 stack under a numpy 2 main process) whose array
pickles do not load in each other (`numpy._core` vs `numpy.core`). Arrays and numpy scalars are
therefore pickled as (dtype string, shape, raw bytes), and arrays of at least `FRAME_BYTES` go through
a shared-memory `FramePool` when one is attached, so frames are never pickled at all.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from replay_check.worker.shm import FramePool, SlotHandle

FRAME_BYTES = 64 * 1024
_POOLS: dict[str, FramePool] = {}  # pools this process can read frames from, by name


def register_pool(pool: FramePool) -> None:
    _POOLS[pool.name] = pool


def unregister_pool(pool: FramePool) -> None:
    _POOLS.pop(pool.name, None)


def _array(dtype: str, shape: tuple[int, ...], data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape).copy()


def _scalar(dtype: str, data: bytes):
    return np.frombuffer(data, dtype=np.dtype(dtype))[0]


def _frame(pool: str, slot: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return _POOLS[pool].read(SlotHandle(pool, slot, tuple(shape), dtype))


class _Pickler(pickle.Pickler):
    def __init__(self, file, pool: FramePool | None):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._pool = pool

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray) and obj.dtype.hasobject is False:
            if self._pool is not None and obj.nbytes >= FRAME_BYTES and self._pool.fits(obj):
                handle = self._pool.write(obj)
                return _frame, (handle.pool, handle.slot, handle.shape, handle.dtype)
            obj = np.ascontiguousarray(obj)
            return _array, (obj.dtype.str, obj.shape, obj.tobytes())
        if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
            return _scalar, (obj.dtype.str, obj.tobytes())
        return NotImplemented


def dumps(obj, pool: FramePool | None = None) -> bytes:
    """Pickle `obj`, writing large arrays into `pool` (the writer side) when given."""
    buffer = io.BytesIO()
    _Pickler(buffer, pool).dump(obj)
    return buffer.getvalue()


def loads(data: bytes):
    return pickle.loads(data)
