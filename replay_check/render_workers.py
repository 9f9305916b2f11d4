"""Camera frames rendered in worker processes while the replay engine steps physics ahead.

Rendering a 480x640 MuJoCo camera on a CPU costs more than everything else a replay step does, and
one software renderer does not keep two cores busy. Each worker here is a simulator worker
(`replay_check.worker`: its own adapter, its own GL context) that receives the full simulator
snapshot of step t and returns that step's frame through its shared-memory frame pool. An adapter's
`render_snapshot` is bit-identical to `render` in that state, so pipelined and serial replays give
the same frames and metrics. Jobs (one per step and camera) go round robin to the workers and are
collected in submission order; the caller bounds how many are outstanding (`depth` steps), which
bounds memory.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Sequence

import numpy as np

from replay_check.errors import WorkerError
from replay_check.sims.base import SimAdapter, SimSpec

MAX_AUTO_WORKERS = 4


def available_cores() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_worker_count(cores: int | None = None) -> int:
    """How many render workers image mode uses by default: one per core, none on a single core.

    On one core a worker only adds a process boundary; on two, two renderers plus the main process
    keep both busy (the renderer alone does not).
    """
    cores = available_cores() if cores is None else cores
    return 0 if cores < 2 else min(cores, MAX_AUTO_WORKERS)


def renderer_environment(workers: int, cores: int | None = None) -> dict[str, str]:
    """Environment for render workers: llvmpipe rasterising in the calling thread when there is a worker per core.

    Each worker's renderer otherwise starts a rasteriser thread per core, and with every core already
    running a worker those threads only contend. Measured on 2 cores, 2 workers, a 400-step ALOHA `run`
    (3 rounds alternating): LP_NUM_THREADS=0 took 3% less wall and 4% less CPU time and 16 MB less PSS,
    the same pixels. A value the user set wins (ProxyAdapter's `environment` does not override).
    """
    cores = available_cores() if cores is None else cores
    return {"LP_NUM_THREADS": "0"} if workers >= cores else {}


def _proc_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a live process has used (Linux /proc; None elsewhere)."""
    fields = _proc_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a live process in MB (VmHWM; None where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_pss_mb(pid: int) -> float | None:
    """Proportional set size now in MB (shared pages split between the processes mapping them)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RenderWorkers:
    """`count` render worker processes for the cameras of `spec`, started in the background.

    `python`/`isolated` choose the interpreter (a stack's, for a replay on that stack). `depth` is how
    many steps may be outstanding; each worker's pool gets enough frame slots for its share of them.
    """

    def __init__(self, spec: SimSpec, count: int, *, depth: int, python: str | None = None,
                 isolated: bool = False):
        if count < 1:
            raise ValueError(f"render workers: count must be >= 1, got {count}")
        self.spec = spec
        self.count = count
        self.depth = depth
        cameras = max(1, len(spec.cameras))
        self._slots = -(-depth * cameras // count) + 1
        self._slot_bytes = max([h * w * 3 for h, w in spec.cameras.values()] or [1])
        self._python = python or sys.executable
        self._isolated = isolated
        self._workers: list = [None] * count
        self._failure: BaseException | None = None
        self._jobs: deque[tuple[int, list[tuple[int, str]]]] = deque()  # (step, [(worker, camera)])
        self._next = 0
        self._final_stats: dict[str, float | None] | None = None
        self._up = [threading.Event() for _ in range(count)]
        self._done = threading.Event()
        # One thread per worker, so the workers import and create their GL contexts at the same time.
        self._starters = [threading.Thread(target=self._start, args=(index,), name=f"render-worker-{index}-start",
                                           daemon=True) for index in range(count)]
        for starter in self._starters:
            starter.start()

    def _start(self, index: int) -> None:
        """Start worker `index` and render once per camera (the first render creates the GL context).

        The thread then waits for `close`: a worker dies with the thread that started it (the worker's
        PR_SET_PDEATHSIG follows the parent thread), so this one outlives it.
        """
        from replay_check.worker.proxy import ProxyAdapter

        try:
            worker = ProxyAdapter(self._python, self.spec, stack="render", slot_bytes=self._slot_bytes,
                                  slots=self._slots, isolated=self._isolated,
                                  environment=renderer_environment(self.count))
            self._workers[index] = worker
            for camera in self.spec.cameras:
                worker.render(camera)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by ready()
            self._failure = self._failure or exc
        finally:
            self._up[index].set()
        self._done.wait()

    def ready(self, index: int | None = None) -> None:
        """Wait until every worker (or worker `index`) is up; raise what starting one raised."""
        for event in self._up if index is None else [self._up[index]]:
            event.wait()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            if isinstance(failure, WorkerError):
                raise failure
            raise WorkerError(f"render worker failed to start: {type(failure).__name__}: {failure}") from failure
        if index is not None and self._workers[index] is None:
            raise WorkerError("render worker failed to start (its error was reported already)")

    def estimating(self, adapter: SimAdapter) -> SimAdapter:
        """`adapter`, with its hypothesis renders (the initial-state estimate's) done by the first worker.

        This process then never creates a GL context of its own in image mode: ~140 MB of renderer
        buffers (a 4096x4096 shadow map among them) and the renderer's start-up CPU stay in the worker.
        A hypothesis render resets the whole simulator state to the given pose first, so the worker's
        frame is the one this process would render (bit for bit).
        """
        return _HypothesesInWorker(adapter, self)

    def hypotheses(self, camera: str, robot_state: np.ndarray, poses: list[dict],
                   size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """`render_hypothesis` of each pose, round robin over the started workers, returned in order.

        Each outstanding reply holds a frame slot of its worker's pool, so at most `slots - 1` are
        outstanding per worker.
        """
        up = [worker for worker, event in zip(self._workers, self._up, strict=True)
              if event.is_set() and worker is not None]
        if not up:
            raise WorkerError("no render worker is up")
        limit = (self._slots - 1) * len(up)
        outstanding: deque = deque()
        images = []
        for k, objects in enumerate(poses):
            if len(outstanding) >= limit:
                images.append(outstanding.popleft().collect("render_hypothesis"))
            worker = up[k % len(up)]
            worker.submit("render_hypothesis", camera, robot_state, objects, size)
            outstanding.append(worker)
        while outstanding:
            images.append(outstanding.popleft().collect("render_hypothesis"))
        return images

    def is_up(self, index: int = 0) -> bool:
        """Whether worker `index` has started (or failed to: `worker` then raises), without waiting."""
        return self._up[index].is_set()

    def worker(self, index: int = 0):
        """Worker `index`'s proxy adapter once it is up (image mode may step its simulator there too)."""
        self.ready(index)
        return self._workers[index]

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self._workers if worker is not None]  # those started so far

    def submit(self, t: int, snapshot: np.ndarray, cameras: Sequence[str]) -> None:
        """Queue step t's frames of `cameras` (simulator camera names); `collect` returns them in order."""
        jobs = []
        for camera in cameras:
            index = self._next
            self._next = (self._next + 1) % self.count
            self._workers[index].submit("render_snapshot", camera, snapshot)
            jobs.append((index, camera))
        self._jobs.append((t, jobs))

    def collect(self) -> tuple[int, dict[str, np.ndarray]]:
        """The oldest submitted step and its frames by simulator camera."""
        t, jobs = self._jobs.popleft()
        return t, {camera: self._workers[index].collect("render_snapshot") for index, camera in jobs}

    def stats(self) -> dict[str, float | None]:
        """CPU seconds, peak RSS and current PSS of the workers (sums over workers), while they run."""
        if self._final_stats is not None:
            return dict(self._final_stats)
        cpu = [process_cpu_seconds(pid) for pid in self.pids]
        peak = [process_peak_rss_mb(pid) for pid in self.pids]
        pss = [process_pss_mb(pid) for pid in self.pids]
        return {"cpu_s": None if None in cpu else float(sum(cpu)),
                "peak_rss_mb": None if None in peak else float(sum(peak)),
                "pss_mb": None if None in pss else float(sum(pss))}

    def close(self) -> None:
        """Stop every worker and join the threads that started them (the stats from just before stay readable)."""
        for event in self._up:
            event.wait()
        self._failure = None
        workers = [worker for worker in self._workers if worker is not None]
        if workers and self._final_stats is None and len(workers) == self.count:
            self._final_stats = self.stats()
        for worker in workers:
            worker.close()
        self._workers = []
        self._jobs.clear()
        self._done.set()
        for starter in self._starters:
            starter.join()

    def __enter__(self) -> RenderWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _HypothesesInWorker:
    """An adapter whose `render_hypothesis` runs in render worker 0; everything else is the adapter's own."""

    def __init__(self, adapter: SimAdapter, workers: RenderWorkers):
        self._adapter = adapter
        self._workers = workers

    def render_hypothesis(self, camera: str, robot_state: np.ndarray, object_poses: dict,
                          size: tuple[int, int] | None = None) -> np.ndarray:
        self._workers.ready(0)
        return self._workers._workers[0].render_hypothesis(camera, robot_state, object_poses, size)

    def render_hypotheses(self, camera: str, robot_state: np.ndarray, poses: list[dict],
                          size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Several hypothesis renders, in order, spread over the workers up by now (worker 0 at least)."""
        self._workers.ready(0)
        return self._workers.hypotheses(camera, robot_state, poses, size)

    def __getattr__(self, name: str):
        return getattr(self._adapter, name)
