"""`run --stack A --stack B`: one episode replayed on each stack, each reported against the recording, and the
stacks against each other (first step where their replays part, per group) in every report's `stacks` section.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay_check import contacts
from replay_check.stacks.compare import TrajectorySink, conclusion, first_parting, label, parting_steps


@dataclass
class StacksOutcome:
    outcomes: list[Any]  # pipeline.RunOutcome per stack, in the order given
    section: dict[str, Any]  # report.json's `stacks` section

    @property
    def conclusion(self) -> str:
        return self.section["conclusion"]


def _rrd_for(request, name: str, first: bool):
    """The first stack's recording is the one a viewer shows (with the other stacks' lanes); the others are files."""
    rerun = request.rerun
    if rerun is None or first:
        return rerun
    path = None if rerun.rrd_path is None else Path(rerun.rrd_path)
    if path is not None:
        path = path.with_name(f"{path.stem}@{name}{path.suffix}")
    return dataclasses.replace(rerun, rrd_path=path, spawn=False, serve=False)


def run_on_stacks(request, names: list[str], progress: Callable[[int, int], None] | None = None) -> StacksOutcome:
    """Replay `request`'s episode on every stack in `names` and compare the replays with the first one's."""
    from replay_check.errors import InputError
    from replay_check.pipeline import run_episode
    from replay_check.stacks.lanes import LaneRecorder, LaneSink

    if len(set(names)) != len(names):
        raise InputError(f"--stack given twice: {', '.join(names)}")
    quality = request.rerun.jpeg_quality if request.rerun and request.rerun.jpeg_quality else 75
    trajectories = {name: TrajectorySink() for name in names}
    lanes = [LaneRecorder(name, quality) for name in names[1:]]
    results: dict[str, Any] = {}
    # The other stacks first, so the first stack's recording can carry their lanes beside its own replay.
    for name, lane in [*zip(names[1:], lanes, strict=True), (names[0], None)]:
        extra = (trajectories[name], lane) if lane is not None else (trajectories[name], LaneSink(lanes))
        stacked = dataclasses.replace(request, stack=name, extra_sinks=(*request.extra_sinks, *extra),
                                      rerun=_rrd_for(request, name, name == names[0]))
        results[name] = run_episode(stacked, progress)
    outcomes = [results[name] for name in names]
    section = compare_outcomes(names, outcomes, [trajectories[name] for name in names])
    for outcome in outcomes:
        outcome.result.stacks = section
        _add_to_report(outcome.report_dir / "report.json", section)
    return StacksOutcome(outcomes, section)


def compare_outcomes(names: list[str], outcomes: list[Any], sinks: list[TrajectorySink]) -> dict[str, Any]:
    """The `stacks` section: per stack its versions, verdict, first divergence, success, and where it parts."""
    first = outcomes[0].result
    width = first.initial_state.robot.shape[0]
    state_names = [f"state_{i}" for i in range(width)]
    entries = []
    earliest: dict[str, int | None] | None = None
    for name, outcome, sink in zip(names, outcomes, sinks, strict=True):
        result = outcome.result
        entry = {"name": name, "label": label(name, result.versions), "versions": result.versions,
                 "status": result.verdict.status, "first_divergence_step": result.verdict.first_divergence_step,
                 "replayed_success": result.summary.get("replayed_success"), "report": str(outcome.report_dir),
                 "cause": result.verdict.cause}
        if entries:
            entry["contacts"] = contacts.compare(first.contacts or [], result.contacts or [],
                                                 names[0], name)
            parts = parting_steps(sinks[0], sink, first.profile, first.settings.tolerances, state_names)
            found = first_parting(parts)
            entry["parts_from"] = {"stack": names[0], "groups": parts,
                                   "first_step": None if found is None else found[0]}
            if earliest is None or (found and (first_parting(earliest) is None or
                                               found[0] < first_parting(earliest)[0])):
                earliest = parts
        entries.append(entry)
    return {"stacks": entries, "conclusion": conclusion(entries, earliest), "cause": _stack_cause(entries)}


def _stack_cause(entries: list[dict[str, Any]]) -> str | None:
    """physics, when the episode reproduces on one stack and not on another (e.g. its recording stack)."""
    passing = [e["label"] for e in entries if e["status"] != "fail"]
    failing = [e["label"] for e in entries if e["status"] == "fail"]
    if passing and failing:
        return f"physics: the replay reproduces on {', '.join(passing)} and fails on {', '.join(failing)}"
    return None


def _add_to_report(path: Path, section: dict[str, Any]) -> None:
    report = json.loads(path.read_text())
    report["stacks"] = section
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(report, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
