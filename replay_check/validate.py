"""Validate many episodes of a dataset: one worker process per episode, resumable, with a batch summary.

Each episode runs in its own "spawn" process, so a crash, a segfault or a hang (killed at the timeout)
costs one episode, recorded as "error" in `<episode folder>/error.json`. A finished episode's report
folder is on disk as soon as it finishes; a re-run skips episodes whose report.json has the
same content fingerprint (replay_check.fingerprint: the episode's rows and video segments), profile
and settings hash, simulator stack, package versions and tool version (unless force), so a killed
batch resumes and a dataset re-recorded in place is replayed again.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from replay_check import __version__
from replay_check.batch_report import EpisodeEntry, build_summary, entry_from_report, write_atomic, write_summary
from replay_check.errors import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OPERATIONAL, InputError, ReplayCheckError
from replay_check.fingerprint import episode_fingerprint
from replay_check.pipeline import (
    STACK_INSTALLED,
    RunRequest,
    dataset_source,
    episode_report_dir,
    report_name,
    resolve_settings,
    stack_name,
)
from replay_check.profiles import select_profile
from replay_check.report import settings_hash, versions

FAULT_ENV = "REPLAY_CHECK_FAULT"  # test hook: "<episode>=raise|exit|segv|hang,..." makes that worker misbehave
ERROR_FILE = "error.json"


@dataclass(frozen=True)
class ValidateRequest:
    """A batch: the dataset, which episodes, how to replay them and how to run the workers."""

    root: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    episodes: str | Sequence[int] = "all"
    workers: int | None = None  # None: os.cpu_count()
    profile: str | None = None
    mode: str = "images"
    image_stride: int = 1
    thresholds: dict[str, Any] | None = None
    tolerance_overrides: dict[str, float] = field(default_factory=dict)
    report_dir: Path = Path("reports")
    timeout: float | None = None  # seconds per episode
    force: bool = False
    plots: bool = True
    stack: str | None = None  # physics stack the episodes replay on (None: this environment)
    offline: bool = False


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
        raise InputError(f"--episodes {spec!r} is malformed; expected 'all', 'START:STOP' or '3,7,9'") from None


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
    key: BatchKey
    episodes: list[int]
    out_dir: Path
    fingerprint: Callable[[int], str]  # computed only for episodes that have a candidate report


def _plan(request: ValidateRequest) -> _Plan:
    """Open the dataset (metadata only), pick the profile, resolve tolerances: bad input fails here, once."""
    from replay_check.dataset import open_dataset

    source = dataset_source(RunRequest(root=request.root, repo_id=request.repo_id, revision=request.revision))
    dataset = open_dataset(**source)
    episodes = parse_episodes(request.episodes, dataset.episode_indices)
    profile = select_profile(dataset.meta, request.profile)
    settings = resolve_settings(dataset.meta, profile, mode=request.mode, image_stride=request.image_stride,
                                thresholds=request.thresholds, tolerance_overrides=request.tolerance_overrides)
    mode = settings.mode
    digest = settings_hash(settings, profile.name)
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
        settings={"profile": profile.name, "mode": mode, "image_stride": request.image_stride, "hash": digest,
                  "stack": stack},
        key=BatchKey(revision, __version__, digest, stack, tuple(sorted(stack_versions.items()))),
        episodes=episodes,
        out_dir=Path(request.report_dir) / folder,
        fingerprint=lambda index: episode_fingerprint(dataset.episode(index)),
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


# ---------------------------------------------------------------- worker process


def _watch_parent(parent: int) -> None:
    """Exit when the parent dies (e.g. SIGKILL), so orphans do not keep replaying."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def _inject_fault(episode: int) -> None:
    for item in os.environ.get(FAULT_ENV, "").split(","):
        target, _, kind = item.partition("=")
        if target.strip() != str(episode):
            continue
        if kind == "raise":
            raise RuntimeError(f"injected failure in episode {episode}")
        if kind == "exit":
            os._exit(7)
        if kind == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if kind == "hang":
            time.sleep(3600)


def _worker(request: RunRequest, parent: int, conn: Connection) -> None:
    """Replay one episode; send ("ok", status) or ("error", message, traceback) to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        _inject_fault(request.episode)
        from replay_check.pipeline import run_episode

        outcome = run_episode(request)
        conn.send(("ok", outcome.result.verdict.status, None))
    except ReplayCheckError as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}", None))
    except Exception as exc:  # a bug in one episode must not stop the batch
        conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


@dataclass
class _Running:
    episode: int
    process: Any
    conn: Connection
    started: float
    message: tuple | None = None


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process died from {name}"
    return f"worker process exited with code {code} without a result"


# ---------------------------------------------------------------- the batch


class _Batch:
    """Launches workers, collects their results and persists errors; the loop lives in run()."""

    def __init__(self, request: ValidateRequest, plan: _Plan, on_event: Callable[[BatchEvent], None] | None):
        self.request = request
        self.plan = plan
        self.on_event = on_event
        self.context = multiprocessing.get_context("spawn")
        self.workers = max(1, request.workers or os.cpu_count() or 1)
        self.running: dict[int, _Running] = {}
        self.counts = {"pass": 0, "warn": 0, "fail": 0, "error": 0}
        self.elapsed: dict[int, float] = {}
        self.done = 0
        self.ran = 0
        self.resumed: set[int] = set()

    def emit(self, kind: str, episode: int | None, status: str | None = None, message: str | None = None) -> None:
        if self.on_event is None:
            return
        total = len(self.plan.episodes)
        self.on_event(BatchEvent(kind, episode, status, message, self.done, total, tuple(sorted(self.running)),
                                 dict(self.counts), self._eta(total)))

    def _eta(self, total: int) -> float | None:
        if not self.elapsed:
            return None
        mean = sum(self.elapsed.values()) / len(self.elapsed)
        left = total - self.done
        return mean * left / self.workers

    def run_request(self, episode: int) -> RunRequest:
        r = self.request
        return RunRequest(root=r.root, repo_id=r.repo_id, revision=r.revision, episode=episode, profile=r.profile,
                          mode=r.mode, image_stride=r.image_stride, thresholds=r.thresholds,
                          tolerance_overrides=dict(r.tolerance_overrides), report_dir=Path(r.report_dir),
                          rerun=None, plots=r.plots, stack=r.stack, offline=r.offline,
                          render_workers=0 if self.workers > 1 else None)  # episodes already share the cores

    def launch(self, episode: int) -> None:
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_worker, args=(self.run_request(episode), os.getpid(), send),
                                       name=f"replay-check episode {episode}", daemon=True)
        process.start()
        send.close()
        self.running[episode] = _Running(episode, process, receive, time.monotonic())
        self.emit("start", episode)

    def poll(self) -> None:
        """Wait briefly for a worker to report or exit; finish those that did, kill those past the timeout."""
        handles = [r.conn for r in self.running.values()] + [r.process.sentinel for r in self.running.values()]
        wait(handles, timeout=0.25)
        now = time.monotonic()
        for run in list(self.running.values()):
            self._receive(run)
            if not run.process.is_alive():
                run.process.join()
                self._receive(run)
                self.finish(run, *self._result(run))
            elif self.request.timeout and now - run.started > self.request.timeout:
                self._kill(run)
                self.finish(run, "error", f"timed out after {self.request.timeout:g} s (worker killed)", None)

    @staticmethod
    def _receive(run: _Running) -> None:
        if run.message is None:
            try:
                if run.conn.poll():
                    run.message = run.conn.recv()
            except (EOFError, OSError):
                pass

    def _result(self, run: _Running) -> tuple[str, str | None, str | None]:
        if run.message is None:
            return "error", _describe_exit(run.process.exitcode), None
        kind, value, trace = run.message
        return ("error", value, trace) if kind == "error" else (value, None, None)

    @staticmethod
    def _kill(run: _Running) -> None:
        run.process.kill()
        run.process.join(5)

    def finish(self, run: _Running, status: str, message: str | None, trace: str | None) -> None:
        elapsed = time.monotonic() - run.started
        del self.running[run.episode]
        run.conn.close()
        if status == "error":
            self._persist_error(run.episode, message or "error", trace, elapsed)
        self.elapsed[run.episode] = elapsed
        self.counts[status] = self.counts.get(status, 0) + 1
        self.done += 1
        self.ran += 1
        self.emit("done", run.episode, status, message)

    def _persist_error(self, episode: int, message: str, trace: str | None, elapsed: float) -> None:
        folder = _episode_dir(self.plan, self.request, episode)
        document = {"episode": episode, "status": "error", "message": message, "traceback": trace,
                    "tool_version": self.plan.key.tool_version, "dataset_revision": self.plan.key.revision,
                    "settings_hash": self.plan.key.settings_hash, "elapsed_s": round(elapsed, 3),
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        write_atomic(folder / ERROR_FILE, json.dumps(document, indent=2) + "\n")

    def terminate_all(self) -> None:
        for run in list(self.running.values()):
            run.process.terminate()
        for run in list(self.running.values()):
            run.process.join(5)
            if run.process.is_alive():
                self._kill(run)
            run.conn.close()
        self.running.clear()

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
            while pending or self.running:
                while pending and len(self.running) < self.workers:
                    self.launch(pending.pop())
                self.poll()
        except KeyboardInterrupt:
            self.terminate_all()
            self.emit("interrupted", None)
            return True
        return False


def validate_dataset(request: ValidateRequest, *,
                     on_event: Callable[[BatchEvent], None] | None = None) -> BatchSummary:
    """Validate the selected episodes and write summary.json/md/html and junit.xml; returns the summary."""
    started = time.monotonic()
    plan = _plan(request)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    batch = _Batch(request, plan, on_event)
    interrupted = batch.run()
    entries = []
    for episode in plan.episodes:
        entry = _entry_on_disk(plan, request, episode)
        unfinished = interrupted and episode not in batch.elapsed and episode not in batch.resumed
        if unfinished and _reusable(plan, request, episode) is None:
            entry = EpisodeEntry(episode, "skipped", message="not run (interrupted)")
        entry.resumed = episode in batch.resumed
        entry.elapsed_s = round(batch.elapsed[episode], 3) if episode in batch.elapsed else entry.elapsed_s
        entries.append(entry)
    run = {"workers": batch.workers, "ran": batch.ran, "resumed": len(batch.resumed), "interrupted": interrupted,
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


__all__ = ["BatchEvent", "BatchKey", "BatchSummary", "ProgressLine", "ValidateRequest", "parse_episodes",
           "reusable_report", "validate_dataset"]
