"""A bounded pool of frame slots in one shared-memory segment, so frames cross processes without pickling.

One process creates the pool (and unlinks it on close); others attach by name. One process writes:
`write(frame)` claims a free slot, copies the frame in and returns a small picklable `SlotHandle`; the
reader turns the handle back into an array (`read`, a copy or a view) and `release`s the slot. Slot
state is one byte per slot at the start of the segment (0 free, 1 written), flipped 0->1 only by the
writer and 1->0 only by the reader, so no lock is needed. A full pool raises `PoolFull` (after waiting
up to `timeout`), which bounds memory when a reader falls behind.

No process hands a segment to multiprocessing's resource tracker: registering starts a tracker
process that outlives the one that started it (a `run` then left a process behind in its group).
The creator instead removes the segment's name with `unlink` as soon as the other process has
attached (the mappings stay valid), so even a killed process leaves nothing in /dev/shm.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

_HEADER = 64  # bytes before the first slot (slot flags live here), keeps slots aligned


class PoolFull(RuntimeError):
    """Every slot holds a frame the reader has not released."""


@dataclass(frozen=True)
class SlotHandle:
    """Where one written frame lives: pool name, slot index, shape and dtype (numpy's dtype.str)."""

    pool: str
    slot: int
    shape: tuple[int, ...]
    dtype: str


_TRACKER_PATCH = threading.Lock()  # render workers start from several threads at once


@contextlib.contextmanager
def _untracked():
    """SharedMemory calls inside this block neither start nor talk to the resource tracker (Python < 3.13).

    One block at a time: two overlapping blocks would restore each other's stand-ins, letting a
    segment be registered (which starts the tracker) or leaving the no-ops in place for good.
    """
    from multiprocessing import resource_tracker

    with _TRACKER_PATCH:
        register, unregister = resource_tracker.register, resource_tracker.unregister
        resource_tracker.register = resource_tracker.unregister = lambda *args, **kwargs: None
        try:
            yield
        finally:
            resource_tracker.register, resource_tracker.unregister = register, unregister


def _open(name: str | None, size: int = 0) -> shared_memory.SharedMemory:
    """Create (name None) or open a segment, untracked."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, create=name is None, size=size, track=False)
    with _untracked():
        return shared_memory.SharedMemory(name=name, create=name is None, size=size)


class FramePool:
    """`slots` frames of up to `slot_bytes` each. Create with `FramePool.create`, attach with `FramePool.attach`."""

    def __init__(self, shm: shared_memory.SharedMemory, slots: int, slot_bytes: int, owner: bool):
        self._shm = shm
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._owner = owner
        self._flags = np.ndarray((slots,), dtype=np.uint8, buffer=shm.buf, offset=0)
        self._next = 0
        self._linked = owner  # the creator's segment still has its name

    @classmethod
    def create(cls, slot_bytes: int, slots: int = 4) -> FramePool:
        if slots < 1 or slots > _HEADER or slot_bytes < 1:
            raise ValueError(f"pool of {slots} slots of {slot_bytes} bytes; expected 1-{_HEADER} slots, > 0 bytes")
        slot_bytes = -(-slot_bytes // 64) * 64
        shm = _open(None, _HEADER + slots * slot_bytes)
        shm.buf[:_HEADER] = bytes(_HEADER)
        return cls(shm, slots, slot_bytes, owner=True)

    @classmethod
    def attach(cls, name: str, slots: int, slot_bytes: int) -> FramePool:
        return cls(_open(name), slots, slot_bytes, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def describe(self) -> tuple[str, int, int]:
        """(name, slots, slot_bytes): what another process passes to `attach`."""
        return self.name, self.slots, self.slot_bytes

    def fits(self, array: np.ndarray) -> bool:
        return array.nbytes <= self.slot_bytes

    def write(self, frame: np.ndarray, timeout: float = 5.0) -> SlotHandle:
        """Copy `frame` into a free slot; PoolFull when none frees up within `timeout` seconds."""
        frame = np.ascontiguousarray(frame)
        if frame.nbytes > self.slot_bytes:
            raise ValueError(f"frame of {frame.nbytes} bytes does not fit a {self.slot_bytes}-byte slot")
        slot = self._claim(timeout)
        view = np.ndarray(frame.shape, dtype=frame.dtype, buffer=self._shm.buf, offset=self._offset(slot))
        view[...] = frame
        self._flags[slot] = 1
        return SlotHandle(self.name, slot, tuple(frame.shape), frame.dtype.str)

    def _claim(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self.slots):
                slot = (self._next + i) % self.slots
                if self._flags[slot] == 0:
                    self._next = (slot + 1) % self.slots
                    return slot
            if time.monotonic() >= deadline:
                raise PoolFull(f"all {self.slots} frame slots of {self.name} are in use")
            time.sleep(0.0005)

    def _offset(self, slot: int) -> int:
        return _HEADER + slot * self.slot_bytes

    def read(self, handle: SlotHandle, copy: bool = True) -> np.ndarray:
        """The frame behind `handle`: a copy (slot released at once) or a view (call `release` when done)."""
        if not 0 <= handle.slot < self.slots or self._flags[handle.slot] != 1:
            raise ValueError(f"slot {handle.slot} of {self.name} holds no written frame")
        view = np.ndarray(handle.shape, dtype=np.dtype(handle.dtype), buffer=self._shm.buf,
                          offset=self._offset(handle.slot))
        if not copy:
            return view
        out = view.copy()
        self.release(handle)
        return out

    def release(self, handle: SlotHandle) -> None:
        """Give the slot back to the writer."""
        self._flags[handle.slot] = 0

    def in_use(self) -> int:
        return int(self._flags.sum())

    def unlink(self) -> None:
        """Remove the segment's name (the creator, once the other side has attached); mappings stay valid."""
        if not self._linked:
            return
        self._linked = False
        with contextlib.suppress(FileNotFoundError):
            if sys.version_info >= (3, 13):
                self._shm.unlink()
            else:
                with _untracked():
                    self._shm.unlink()

    def close(self) -> None:
        """Detach (and unlink, for the creator). Views handed out by `read(copy=False)` must be gone."""
        self._flags = None
        self._shm.close()
        self.unlink()
