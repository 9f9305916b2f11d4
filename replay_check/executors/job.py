"""What crosses to a worker and back: one picklable Job in, one picklable JobResult out.

A worker needs no shared filesystem with the driver: it reads the dataset (Hub cache or a path on its
own node), builds the episode's report folder in a private temporary directory and returns the files as
bytes. The driver writes every report, so resume, summaries and exit codes do not depend on where the
episode ran. `run_job` never raises for a failing episode: errors come back as status "error".
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from replay_check.errors import ReplayCheckError
from replay_check.pipeline import RunRequest

FAULT_ENV = "REPLAY_CHECK_FAULT"  # test hook, read by the driver: "<episode>=raise|exit|segv|kill|hang,..."
FAULTS = ("raise", "exit", "segv", "kill", "hang")


@dataclass(frozen=True)
class Job:
    """One episode to replay. `request.report_dir` is ignored: the worker writes in a temporary folder."""

    episode: int
    request: RunRequest
    fault: str | None = None  # one of FAULTS: misbehave at the first step (tests of crash handling)


@dataclass
class JobResult:
    """An episode's outcome: status pass/warn/fail/error; `files` is its report folder (path -> bytes)."""

    episode: int
    status: str
    message: str | None = None
    traceback: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    worker: str = ""  # host:pid that ran it
    elapsed_s: float = 0.0


def fault_for(episode: int, spec: str | None = None) -> str | None:
    """The injected fault for this episode from REPLAY_CHECK_FAULT (or `spec`), if any."""
    spec = os.environ.get(FAULT_ENV, "") if spec is None else spec
    for item in spec.split(","):
        target, _, kind = item.partition("=")
        if target.strip() == str(episode) and kind.strip() in FAULTS:
            return kind.strip()
    return None


def _misbehave(kind: str, episode: int) -> None:
    if kind == "raise":
        raise RuntimeError(f"injected failure in episode {episode}")
    if kind == "exit":
        os._exit(7)
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        time.sleep(3600)


def pack_folder(folder: Path) -> dict[str, bytes]:
    """Every file under folder as {relative posix path: bytes}."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_job(job: Job) -> JobResult:
    """Replay job.episode into a private temporary folder and return its files (or the error)."""
    from replay_check.pipeline import run_episode

    started = time.monotonic()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    fired = False

    def progress(step: int, total: int) -> None:
        nonlocal fired
        if job.fault and not fired:
            fired = True
            _misbehave(job.fault, job.episode)

    try:
        with tempfile.TemporaryDirectory(prefix="replay-check-job-") as tmp:
            request = dataclasses.replace(job.request, episode=job.episode, report_dir=Path(tmp), rerun=None,
                                          video=None)
            outcome = run_episode(request, progress=progress)
            files = pack_folder(outcome.report_dir)
        return JobResult(job.episode, outcome.result.verdict.status, files=files, worker=worker,
                         elapsed_s=time.monotonic() - started)
    except ReplayCheckError as exc:
        message, trace = f"{type(exc).__name__}: {exc}", None
    except Exception as exc:  # a bug in one episode must not stop the batch
        message, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    return JobResult(job.episode, "error", message, trace, worker=worker, elapsed_s=time.monotonic() - started)
