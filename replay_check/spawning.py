"""Spawned worker processes that leave nothing running once their work is done.

Starting a process with multiprocessing's "spawn" starts its resource tracker too: a process of its
own that only exits after this one has exited, so a command that used spawned workers (the
ensemble, `validate --workers`) left it behind for a moment -- visible to a CI job's process group, a
whole-process timer or a child subreaper. `TrackerScope` stops the tracker again when it was not
running before (semaphores the scope created must be released first: the tracker would report them
as leaked and unlink them).
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import resource_tracker


def _tracker_running() -> bool:
    return getattr(resource_tracker._resource_tracker, "_fd", None) is not None


class TrackerScope:
    """The spawn context, and on `close` the resource tracker stopped if this scope's processes started it."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")
        self._was_running = _tracker_running()

    def close(self) -> None:
        stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # CPython 3.8+; waits for it to exit
        if not self._was_running and _tracker_running() and stop is not None:
            stop()
