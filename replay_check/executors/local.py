"""A pool of local worker processes reused across episodes (imports and start-up paid once per worker).

Guarantees kept from one-process-per-episode:
- an episode that crashes its worker (segfault, os._exit, OOM kill) or outlives the timeout costs that
  episode only: it becomes "error", the worker is killed if needed and replaced on the next submit;
- a SIGKILLed driver leaves no workers behind: each worker asks Linux to SIGKILL it when its parent
  dies (PR_SET_PDEATHSIG), and on every platform a watchdog thread exits when the parent changes and
  an idle worker exits on end-of-file of its job pipe;
- Ctrl-C reaches the driver only (workers ignore SIGINT), which then kills the workers itself.
Workers are "spawn" processes: no state forked from the driver, the same on every OS. A worker is
retired after `max_jobs` episodes, so whatever a replay leaks (GL contexts, caches) stays bounded.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from replay_check.executors.job import Job, JobResult
from replay_check.spawning import TrackerScope

_PR_SET_PDEATHSIG = 1
MAX_JOBS_PER_WORKER = 25


def _die_with_parent(parent: int) -> None:
    """Make sure this process does not outlive `parent` (the driver)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still applies
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(3)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watchdog").start()


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def serve(conn: Connection, parent: int) -> None:
    """Worker main loop: receive a Job, send back its JobResult, until None or end-of-file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    _die_with_parent(parent)
    from replay_check.executors.job import run_job  # imports paid here, once per worker

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send(run_job(job))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: Job | None = None
    started: float = 0.0
    jobs: int = 0


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process died from {name}"
    return f"worker process exited with code {code} without a result"


class LocalPool:
    """Up to `workers` spawn processes (default: one per CPU), each running one episode at a time."""

    def __init__(self, workers: int | None = None, *, timeout: float | None = None,
                 max_jobs: int = MAX_JOBS_PER_WORKER):
        self.capacity = max(1, workers or os.cpu_count() or 1)
        self.timeout = timeout
        self.max_jobs = max(1, max_jobs)
        self._scope = TrackerScope()  # spawn context; close() stops the resource tracker its workers started
        self._context = self._scope.context
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}

    def _spawn(self) -> _Worker:
        driver_end, worker_end = self._context.Pipe(duplex=True)
        process = self._context.Process(target=serve, args=(worker_end, os.getpid()), daemon=True,
                                        name="replay-check worker")
        process.start()
        worker_end.close()
        return _Worker(process, driver_end)

    def submit(self, job: Job) -> None:
        while True:
            worker = self._idle.pop() if self._idle else self._spawn()
            try:
                worker.conn.send(job)
                break
            except (BrokenPipeError, EOFError, OSError):  # it died while idle: replace it
                self._discard(worker)
        worker.job, worker.started = job, time.monotonic()
        worker.jobs += 1
        self._busy[job.episode] = worker

    def running(self) -> list[int]:
        return sorted(self._busy)

    def wait(self, timeout: float) -> list[JobResult]:
        if not self._busy:
            return []
        handles = [w.conn for w in self._busy.values()] + [w.process.sentinel for w in self._busy.values()]
        wait(handles, timeout=timeout)
        now = time.monotonic()
        results = []
        for episode, worker in list(self._busy.items()):
            result = self._collect(worker, now)
            if result is not None:
                del self._busy[episode]
                results.append(result)
        return results

    def _collect(self, worker: _Worker, now: float) -> JobResult | None:
        """The worker's result if it has one, an error if it died or ran out of time, else None."""
        job = worker.job
        try:
            if worker.conn.poll():
                result = worker.conn.recv()
                worker.job = None
                if worker.jobs < self.max_jobs:
                    self._idle.append(worker)
                else:
                    self._retire(worker)
                return result
        except (EOFError, OSError):
            pass
        if not worker.process.is_alive():
            worker.process.join()
            self._discard(worker)
            return JobResult(job.episode, "error", describe_exit(worker.process.exitcode),
                             elapsed_s=now - worker.started)
        if self.timeout and now - worker.started > self.timeout:
            self._discard(worker)
            return JobResult(job.episode, "error", f"timed out after {self.timeout:g} s (worker killed)",
                             elapsed_s=now - worker.started)
        return None

    def _retire(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.conn.send(None)
        worker.process.join(5)
        self._discard(worker)

    @staticmethod
    def _discard(worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.conn.close()

    def cancel_all(self) -> None:
        for worker in self._busy.values():
            worker.process.kill()
        for worker in self._busy.values():
            self._discard(worker)
        self._busy.clear()

    def close(self) -> None:
        """Stop idle workers politely (None), kill busy ones."""
        self.cancel_all()
        for worker in self._idle:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self._idle:
            worker.process.join(5)
            self._discard(worker)
        self._idle.clear()
        self._scope.close()
