"""Episodes as Ray tasks, on a local Ray instance or a cluster (`pip install "replay-check[ray]"`).

Each episode is one task requesting `cpus_per_task` CPUs. The task returns the JobResult (report files
as bytes), so worker nodes share nothing with the driver but the dataset: a Hub repo (each node fills
its own Hub cache) or a path that exists on every node. replay-check must be installed, at the same
version, on every node. A task whose worker process dies or whose node is lost is retried
`max_retries` times by Ray, then becomes "error"; a task past the timeout is cancelled (its worker is
killed) and becomes "error"; Ctrl-C cancels every outstanding task. At most `capacity` tasks are in
flight (default: the cluster's CPUs / cpus_per_task), so the timeout is measured from a task's start.
The private instance (no address) listens on 127.0.0.1 only, provided Ray is first imported here (the
setting then holds for the whole process: connect to a remote cluster from another process).
"""

from __future__ import annotations

import os
import socket
import sys
import time

from replay_check.errors import InputError, OperationalError
from replay_check.executors.job import Job, JobResult, run_job

DEFAULT_RETRIES = 1
PROBE_TIMEOUT_S = 5.0  # ray.init retries an address where nothing answers for 10 minutes and more
# Read once, when ray is imported. "0" makes Ray take 127.0.0.1 as this machine's address, so a private
# instance binds its servers to the loopback; otherwise (Linux default) they listen on every interface.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _import_ray(*, private: bool = False):
    if private and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")  # inherited by the instance's processes too
    try:
        import ray
    except ImportError:
        raise InputError('--executor ray needs Ray: pip install "replay-check[ray]"') from None
    return ray


def unreachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why nothing accepts a TCP connection at a HOST:PORT (or ray://HOST:PORT) address; None when something does
    (or the address is another form, such as "auto", that Ray resolves itself)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


class RayExecutor:
    """Runs Jobs as Ray tasks on the cluster at `address` (else RAY_ADDRESS, else a private one on 127.0.0.1)."""

    def __init__(self, *, address: str | None = None, workers: int | None = None, timeout: float | None = None,
                 cpus_per_task: float = 1.0, max_retries: int = DEFAULT_RETRIES):
        address = address or os.environ.get("RAY_ADDRESS") or None  # RAY_ADDRESS: set by `ray job submit`
        ray = self._ray = _import_ray(private=address is None)
        if cpus_per_task <= 0:
            raise InputError(f"--cpus-per-task {cpus_per_task:g}; expected a positive number")
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            self._connect(address)
        self.timeout = timeout
        self._task = ray.remote(num_cpus=cpus_per_task, max_retries=max_retries, retry_exceptions=False)(run_job)
        self.max_retries = max_retries
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if cpus < cpus_per_task:
            self.close()
            raise InputError(f"the Ray cluster has {cpus:g} CPUs; each episode asks for {cpus_per_task:g}")
        self.capacity = workers or max(1, int(cpus // cpus_per_task))
        self._busy: dict[object, tuple[Job, float]] = {}

    def _connect(self, address: str | None) -> None:
        options = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
        try:
            if address is None:  # a private instance on this machine, reachable from here only
                self._ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **options)
            else:
                if (reason := unreachable(address)) is not None:
                    raise ConnectionError(f"nothing answers there ({reason})")
                self._ray.init(address=address, **options)
        except Exception as exc:  # Ray raises ConnectionError, ValueError, or a bare Exception on a startup timeout
            where = f"at {address}" if address else "on this machine"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OperationalError(f"cannot start or reach a Ray cluster {where}: {first}") from None

    def submit(self, job: Job) -> None:
        self._busy[self._task.remote(job)] = (job, time.monotonic())

    def running(self) -> list[int]:
        return sorted(job.episode for job, _ in self._busy.values())

    def wait(self, timeout: float) -> list[JobResult]:
        if not self._busy:
            return []
        ray = self._ray
        ready, _ = ray.wait(list(self._busy), num_returns=len(self._busy), timeout=timeout)
        now = time.monotonic()
        results = []
        for ref in ready:
            job, started = self._busy.pop(ref)
            results.append(self._get(ref, job, now - started))
        if self.timeout:
            for ref, (job, started) in list(self._busy.items()):
                if now - started > self.timeout:
                    ray.cancel(ref, force=True)
                    del self._busy[ref]
                    results.append(JobResult(job.episode, "error",
                                             f"timed out after {self.timeout:g} s (Ray task cancelled)",
                                             elapsed_s=now - started))
        return results

    def _get(self, ref: object, job: Job, elapsed: float) -> JobResult:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            return JobResult(job.episode, "error", self._describe(exc), elapsed_s=elapsed)

    def _describe(self, exc: Exception) -> str:
        errors = self._ray.exceptions
        attempts = f"after {self.max_retries + 1} attempts"
        if isinstance(exc, errors.WorkerCrashedError):
            return f"Ray worker process died {attempts}"
        if isinstance(exc, errors.NodeDiedError | errors.ObjectLostError):
            return f"Ray node lost {attempts}: {type(exc).__name__}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"Ray task failed: {type(exc).__name__}: {first}".rstrip(": ")

    def cancel_all(self) -> None:
        for ref in self._busy:
            self._ray.cancel(ref, force=True)
        self._busy.clear()

    def close(self) -> None:
        self.cancel_all()
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()
