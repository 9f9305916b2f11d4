"""Where `validate` runs its episodes: a persistent local process pool or a Ray cluster.

Both take picklable Jobs and hand back picklable JobResults; the driver (replay_check.validate) keeps
all bookkeeping and writes every file, so the two executors produce the same reports and summaries.
An executor turns a crash, a dead worker, a lost node or a timeout into a JobResult with status
"error"; it never raises for one episode's misfortune.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from replay_check.errors import InputError
from replay_check.executors.job import FAULT_ENV, Job, JobResult, fault_for, run_job

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    """Runs up to `capacity` jobs at once."""

    capacity: int

    def submit(self, job: Job) -> None:
        """Start a job (the caller keeps len(running()) < capacity)."""

    def wait(self, timeout: float) -> list[JobResult]:
        """Results that finished (or failed, or timed out) within `timeout` seconds."""

    def running(self) -> Sequence[int]:
        """Episodes submitted and not yet returned by wait()."""

    def cancel_all(self) -> None:
        """Stop every running job now (Ctrl-C); their results are dropped."""

    def close(self) -> None:
        """Release workers (and the Ray connection this executor opened)."""


def make_executor(name: str, *, workers: int | None, timeout: float | None, ray_address: str | None = None,
                  cpus_per_task: float = 1.0) -> Executor:
    """The executor called `name`; bad choices (or Ray not installed) are InputError."""
    if name == "local":
        if ray_address is not None:
            raise InputError("--ray-address needs --executor ray")
        from replay_check.executors.local import LocalPool

        return LocalPool(workers, timeout=timeout)
    if name == "ray":
        from replay_check.executors.ray import RayExecutor

        return RayExecutor(address=ray_address, workers=workers, timeout=timeout, cpus_per_task=cpus_per_task)
    raise InputError(f"executor {name!r}; expected one of {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "FAULT_ENV", "Executor", "Job", "JobResult", "fault_for", "make_executor", "run_job"]
