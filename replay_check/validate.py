"""Validate many episodes of a dataset on an executor (local process pool or Ray), resumable, with a summary.

The executor (replay_check.executors) runs each episode wherever it runs it and hands back the report
files; this driver writes every episode folder, records a crash, a dead worker or a timeout as "error"
in `<episode folder>/error.json`, and writes the batch summary. A finished episode's report folder is on
disk as soon as its result arrives; a re-run skips episodes whose report.json has the same content
fingerprint (replay_check.fingerprint: the episode's rows and video segments), profile and settings
hash, simulator stack, package versions and tool version (unless force), so a killed batch resumes and
a dataset re-recorded in place is replayed again.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay_check import __version__
from replay_check.batch_report import EpisodeEntry, build_summary, entry_from_report, write_atomic, write_summary
from replay_check.config import ReplayConfig, ReplayOptions, dataset_source, resolve
from replay_check.errors import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OPERATIONAL, InputError
from replay_check.executors import FAULT_ENV, Executor, Job, JobResult, fault_for, make_executor
from replay_check.fingerprint import episode_fingerprint
from replay_check.outputs import check_output_dir
from replay_check.pipeline import (
    STACK_INSTALLED,
    RunRequest,
    episode_report_dir,
    load_episode,
    open_twin,
    report_name,
    stack_name,
)
from replay_check.provenance import versions
from replay_check.report import install_report_files

ERROR_FILE = "error.json"


@dataclass(frozen=True)
class ValidateRequest(ReplayOptions):
    """A batch: the replay options every episode shares, which episodes, and how to run the workers."""

    episodes: str | Sequence[int] = "all"
    workers: int | None = None  # None: os.cpu_count() (local), the cluster's CPUs / cpus_per_task (ray)
    timeout: float | None = None  # seconds per episode
    force: bool = False
    executor: str = "local"  # "local" | "ray"
    ray_address: str | None = None  # ray: None uses $RAY_ADDRESS or starts a private local instance
    cpus_per_task: float = 1.0  # ray: CPUs each episode's task requests


@dataclass(frozen=True)
class BatchEvent:
    """What on_event receives: kind is "skip" (resumed), "start", "done" or "interrupted"."""

    kind: str
    episode: int | None
    status: str | None = None
    message: str | None = None
    done: int = 0
    total: int = 0
    running: tuple[int, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    eta_s: float | None = None
    worker: str | None = None  # "done": host:pid of the worker that ran it, when known


@dataclass
class BatchSummary:
    """The outcome of validate_dataset; `summary` is the summary.json document."""

    summary: dict[str, Any]
    out_dir: Path
    paths: dict[str, Path]
    interrupted: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]

    def exit_code(self, strict: bool = False) -> int:
        """0 all pass (warn too unless strict), 1 any fail (or warn when strict), 3 no fail but an episode
        errored or did not run (an operational failure, not a verdict), 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        c = self.counts
        if c["fail"] + (c["warn"] if strict else 0):
            return EXIT_FAIL
        return EXIT_OPERATIONAL if c["error"] + c["skipped"] else 0


# ---------------------------------------------------------------- episode selection


def parse_episodes(spec: str | Sequence[int], available: Sequence[int]) -> list[int]:
    """`all`, `A:B` (python-slice style, B excluded, either side optional) or `3,7,9` -> sorted indices."""
    valid = sorted(available)
    wanted = _parse_spec(spec.strip(), valid) if isinstance(spec, str) else sorted({int(i) for i in spec})
    missing = [i for i in wanted if i not in set(valid)]
    if missing:
        span = f"{valid[0]}..{valid[-1]}" if valid else "none"
        raise InputError(f"episodes {_short(missing)} are not in the dataset; valid episode indices: {span}")
    if not wanted:
        raise InputError(f"--episodes {spec!r} selects no episode")
    return wanted


def _parse_spec(spec: str, valid: list[int]) -> list[int]:
    if spec == "all":
        return list(valid)
    try:
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) > 3:
                raise ValueError
            start = int(parts[0]) if parts[0] else (valid[0] if valid else 0)
            stop = int(parts[1]) if parts[1] else (valid[-1] + 1 if valid else 0)
            step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
            if start < 0 or stop < 0 or step < 1:
                raise ValueError
            return list(range(start, stop, step))
        return sorted({int(part) for part in spec.split(",")})
    except ValueError:
        raise InputError(f"--episodes {spec!r} is malformed; expected 'all', 'START:STOP[:STEP]' or '3,7,9'") from None


def _short(indices: list[int]) -> str:
    return ", ".join(map(str, indices[:5])) + (f" ... ({len(indices)} in all)" if len(indices) > 5 else "")


# ---------------------------------------------------------------- plan: what is already done


@dataclass(frozen=True)
class BatchKey:
    """What makes an existing report reusable (with the episode's content fingerprint, checked per episode)."""

    revision: str | None  # recorded for the summary; the fingerprint, not the revision, decides reuse
    tool_version: str
    settings_hash: str
    stack: str = STACK_INSTALLED
    versions: tuple[tuple[str, str], ...] = ()


@dataclass
class _Plan:
    dataset: dict[str, Any]
    settings: dict[str, Any]
    config: ReplayConfig  # resolved once, handed to every worker
    key: BatchKey
    episodes: list[int]
    out_dir: Path
    fingerprint: Callable[[int], str]  # computed only for episodes that have a candidate report


def _plan(request: ValidateRequest) -> _Plan:
    """Open the dataset (metadata only), pick the profile, resolve tolerances: bad input fails here, once."""
    from replay_check.dataset import open_dataset

    dataset = open_dataset(**dataset_source(request))
    episodes = parse_episodes(request.episodes, dataset.episode_indices)
    config = resolve(request, dataset.meta)
    if config.env_state_from:
        open_twin(config.env_state_from)  # a missing twin is bad input, reported once
    profile, mode, digest = config.profile, config.settings.mode, config.settings_hash
    revision = dataset.meta.revision or request.revision
    meta = dataset.meta
    stack = stack_name(request.stack, profile)
    folder = report_name(meta.report_name, stack)
    stack_versions = versions()
    if stack != STACK_INSTALLED:  # built here, once, before the workers start
        from replay_check.stacks import build, resolve_name
        from replay_check.stacks.runner import report_versions

        built = build(resolve_name(request.stack, recorded=profile.recorded_stack), offline=request.offline)
        stack_versions = report_versions(built.versions)
    return _Plan(
        dataset={"name": meta.name, "repo_id": meta.repo_id, "root": str(meta.root), "revision": revision,
                 "id": meta.identity, "folder": folder},
        settings={"profile": profile.name, "mode": mode, "image_stride": config.settings.image_stride,
                  "hash": digest, "stack": stack},
        config=config,
        key=BatchKey(revision, __version__, digest, stack, tuple(sorted(stack_versions.items()))),
        episodes=episodes,
        out_dir=Path(request.report_dir) / folder,
        fingerprint=lambda index: episode_fingerprint(load_episode(dataset, index, config.env_state_from)),
    )


def _episode_dir(plan: _Plan, request: ValidateRequest, episode: int) -> Path:
    return episode_report_dir(request.report_dir, plan.dataset["folder"], episode)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def reusable_report(folder: Path, key: BatchKey, fingerprint: Callable[[], str]) -> dict[str, Any] | None:
    """The folder's report.json if it was made from the same episode content, settings, stack and tool.

    `fingerprint` computes the episode's content fingerprint now; it is called only when everything
    else matches, so a first run (no reports) costs nothing.
    """
    if (folder / ERROR_FILE).exists():
        return None
    report = _read_json(folder / "report.json")
    if report is None:
        return None
    settings = report.get("settings") or {}
    same = (
        report.get("tool_version") == key.tool_version
        and settings.get("hash") == key.settings_hash
        and settings.get("stack") == key.stack
        and (report.get("versions") or {}) == dict(key.versions)
        and (report.get("dataset") or {}).get("fingerprint") is not None
    )
    if not same:
        return None
    return report if report["dataset"]["fingerprint"] == fingerprint() else None


def _reusable(plan: _Plan, request: ValidateRequest, episode: int) -> dict[str, Any] | None:
    return reusable_report(_episode_dir(plan, request, episode), plan.key, lambda: plan.fingerprint(episode))


def _entry_on_disk(plan: _Plan, request: ValidateRequest, episode: int) -> EpisodeEntry:
    """This episode's latest result for this batch key: its report, its error, or skipped."""
    folder = _episode_dir(plan, request, episode)
    rel = f"{folder.name}"
    error = _read_json(folder / ERROR_FILE)
    if error is not None and error.get("settings_hash") == plan.key.settings_hash:
        return EpisodeEntry(episode, "error", message=error.get("message"), report=f"{rel}/{ERROR_FILE}",
                            elapsed_s=error.get("elapsed_s"))
    report = _reusable(plan, request, episode)
    if report is not None:
        return entry_from_report(episode, report, f"{rel}/report.md")
    return EpisodeEntry(episode, "skipped", message="not run")


# ---------------------------------------------------------------- the batch


class _Batch:
    """Feeds Jobs to an executor, writes what comes back (reports, errors) and keeps the counts."""

    def __init__(self, request: ValidateRequest, plan: _Plan, executor: Executor,
                 on_event: Callable[[BatchEvent], None] | None):
        self.request = request
        self.plan = plan
        self.executor = executor
        self.on_event = on_event
        self.workers = executor.capacity
        self.counts = {"pass": 0, "warn": 0, "fail": 0, "error": 0}
        self.elapsed: dict[int, float] = {}
        self.started: dict[int, float] = {}
        self.done = 0
        self.ran = 0
        self.resumed: set[int] = set()

    def emit(self, kind: str, episode: int | None, status: str | None = None, message: str | None = None,
             worker: str | None = None) -> None:
        if self.on_event is None:
            return
        total = len(self.plan.episodes)
        self.on_event(BatchEvent(kind, episode, status, message, self.done, total, tuple(sorted(self.started)),
                                 dict(self.counts), self._eta(total), worker))

    def _eta(self, total: int) -> float | None:
        if not self.elapsed:
            return None
        mean = sum(self.elapsed.values()) / len(self.elapsed)
        left = total - self.done
        return mean * left / self.workers

    def job(self, episode: int) -> Job:
        """Everything a worker needs for one episode, ready-made and picklable."""
        shared = {f.name: getattr(self.request, f.name) for f in fields(ReplayOptions)}
        request = RunRequest(**shared, episode=episode, rerun=None, render_workers=self._render_workers(),
                             config=self.plan.config)
        return Job(episode, request, fault=fault_for(episode))

    def _render_workers(self) -> int | None:
        """Image mode's render processes per episode: none when episodes already share the cores."""
        if self.request.executor == "ray":  # a task owns the CPUs it asked for
            cpus = int(self.request.cpus_per_task)
            return cpus if cpus >= 2 else 0
        return 0 if self.workers > 1 else None

    def launch(self, episode: int) -> None:
        self.executor.submit(self.job(episode))
        self.started[episode] = time.monotonic()
        self.emit("start", episode)

    def finish(self, result: JobResult) -> None:
        """Write the episode's report folder (or error.json) from what the worker returned."""
        episode = result.episode
        elapsed = time.monotonic() - self.started.pop(episode)
        status, message, trace = result.status, result.message, result.traceback
        if status != "error":
            status, message = self._check_versions(result)
        if status != "error":
            try:
                install_report_files(result.files, _episode_dir(self.plan, self.request, episode))
            except (OSError, ValueError) as exc:
                status, message, trace = "error", f"could not write the report: {exc}", None
        if status == "error":
            self._persist_error(episode, message or "error", trace, elapsed, result.worker or None)
        self.elapsed[episode] = elapsed
        self.counts[status] = self.counts.get(status, 0) + 1
        self.done += 1
        self.ran += 1
        self.emit("done", episode, status, message, result.worker or None)

    def _check_versions(self, result: JobResult) -> tuple[str, str | None]:
        """A report made with other packages than this batch's key would never be reused: an error instead."""
        try:
            report = json.loads(result.files["report.json"])
        except (KeyError, ValueError):
            return "error", f"worker {result.worker} returned no readable report.json"
        if report.get("tool_version") != __version__:
            return "error", (f"worker {result.worker} runs replay-check {report.get('tool_version')}; this driver "
                             f"runs {__version__}: install the same version on every node")
        mine, theirs = dict(self.plan.key.versions), report.get("versions") or {}
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if differ:
            found = ", ".join(f"{k} {theirs.get(k, 'missing')} (driver {mine.get(k, 'missing')})" for k in differ)
            return "error", f"worker {result.worker} replayed with other package versions: {found}"
        return result.status, None

    def _persist_error(self, episode: int, message: str, trace: str | None, elapsed: float,
                       worker: str | None = None) -> None:
        """error.json; `worker` (host:pid, when it returned the error itself) says which node to look at."""
        folder = _episode_dir(self.plan, self.request, episode)
        document = {"episode": episode, "status": "error", "message": message, "traceback": trace, "worker": worker,
                    "tool_version": self.plan.key.tool_version, "dataset_revision": self.plan.key.revision,
                    "settings_hash": self.plan.key.settings_hash, "elapsed_s": round(elapsed, 3),
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        write_atomic(folder / ERROR_FILE, json.dumps(document, indent=2) + "\n")

    def run(self) -> bool:
        """Run every selected episode not already done; returns True when interrupted (Ctrl-C)."""
        pending = []
        for episode in self.plan.episodes:
            if not self.request.force and (report := _reusable(self.plan, self.request, episode)) is not None:
                self.resumed.add(episode)
                status = report.get("verdict", {}).get("status", "pass")
                self.counts[status] = self.counts.get(status, 0) + 1
                self.done += 1
                self.emit("skip", episode, status)
            else:
                pending.append(episode)
        pending.reverse()
        try:
            while pending or self.started:
                while pending and len(self.started) < self.executor.capacity:
                    self.launch(pending.pop())
                for result in self.executor.wait(0.25):
                    self.finish(result)
        except KeyboardInterrupt:
            self.executor.cancel_all()
            self.started.clear()
            self.emit("interrupted", None)
            return True
        return False


def validate_dataset(request: ValidateRequest, *,
                     on_event: Callable[[BatchEvent], None] | None = None) -> BatchSummary:
    """Validate the selected episodes and write summary.json/md/html and junit.xml; returns the summary."""
    started = time.monotonic()
    check_output_dir("--report-dir", request.report_dir)
    plan = _plan(request)
    executor = make_executor(request.executor, workers=request.workers, timeout=request.timeout,
                             ray_address=request.ray_address, cpus_per_task=request.cpus_per_task)
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        batch = _Batch(request, plan, executor, on_event)
        interrupted = batch.run()
    finally:
        executor.close()
    entries = []
    for episode in plan.episodes:
        entry = _entry_on_disk(plan, request, episode)
        unfinished = interrupted and episode not in batch.elapsed and episode not in batch.resumed
        if unfinished and _reusable(plan, request, episode) is None:
            entry = EpisodeEntry(episode, "skipped", message="not run (interrupted)")
        entry.resumed = episode in batch.resumed
        entry.elapsed_s = round(batch.elapsed[episode], 3) if episode in batch.elapsed else entry.elapsed_s
        entries.append(entry)
    run = {"executor": request.executor, "workers": batch.workers, "ran": batch.ran, "resumed": len(batch.resumed),
           "interrupted": interrupted,
           "wall_s": round(time.monotonic() - started, 3),
           "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
    summary = build_summary(entries, dataset=plan.dataset, settings=plan.settings, selection=plan.episodes, run=run,
                            tool_version=__version__)
    paths = write_summary(summary, plan.out_dir)
    return BatchSummary(summary, plan.out_dir, paths, interrupted)


# ---------------------------------------------------------------- live progress


class ProgressLine:
    """A one-line live status on a TTY stream: done/total, pass/warn/fail/error, running episodes, ETA."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        self.width = 0

    def __call__(self, event: BatchEvent) -> None:
        if event.kind == "done" and event.status == "error":
            self._clear()
            print(f"episode {event.episode}: ERROR {event.message}", file=self.stream)
        text = format_progress(event)
        self.stream.write("\r" + text.ljust(self.width))
        self.width = len(text)
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r" + " " * self.width + "\r")

    def close(self) -> None:
        if self.width:
            self.stream.write("\n")
            self.stream.flush()


def format_progress(event: BatchEvent) -> str:
    c = event.counts
    running = ",".join(map(str, event.running[:6])) + ("..." if len(event.running) > 6 else "")
    eta = "" if event.eta_s is None else f" | ETA {_duration(event.eta_s)}"
    return (f"[{event.done}/{event.total}] pass {c.get('pass', 0)} warn {c.get('warn', 0)} "
            f"fail {c.get('fail', 0)} error {c.get('error', 0)} | running: {running or '-'}{eta}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


__all__ = ["FAULT_ENV", "BatchEvent", "BatchKey", "BatchSummary", "ProgressLine", "ValidateRequest", "parse_episodes",
           "reusable_report", "validate_dataset"]
