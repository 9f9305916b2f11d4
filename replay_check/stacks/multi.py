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

from replay_check.stacks.compare import TrajectorySink, conclusion, first_parting, label, parting_steps


@dataclass
class StacksOutcome:
    outcomes: list[Any]  # pipeline.RunOutcome per stack, in the order given
    section: dict[str, Any]  # report.json's `stacks` section

    @property
    def conclusion(self) -> str:
        return self.section["conclusion"]


def _rrd_for(request, name: str, first: bool):
    rerun = request.rerun
    if rerun is None or rerun.rrd_path is None or first:
        return rerun
    path = Path(rerun.rrd_path)
    return dataclasses.replace(rerun, rrd_path=path.with_name(f"{path.stem}@{name}{path.suffix}"))


def run_on_stacks(request, names: list[str], progress: Callable[[int, int], None] | None = None) -> StacksOutcome:
    """Replay `request`'s episode on every stack in `names` and compare the replays with the first one's."""
    from replay_check.pipeline import run_episode

    outcomes, sinks = [], []
    for i, name in enumerate(names):
        sink = TrajectorySink()
        stacked = dataclasses.replace(request, stack=name, extra_sinks=(*request.extra_sinks, sink),
                                      rerun=_rrd_for(request, name, i == 0))
        outcomes.append(run_episode(stacked, progress))
        sinks.append(sink)
    section = compare_outcomes(names, outcomes, sinks)
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
                 "replayed_success": result.summary.get("replayed_success"), "report": str(outcome.report_dir)}
        if entries:
            parts = parting_steps(sinks[0], sink, first.profile, first.settings.tolerances, state_names)
            found = first_parting(parts)
            entry["parts_from"] = {"stack": names[0], "groups": parts,
                                   "first_step": None if found is None else found[0]}
            if earliest is None or (found and (first_parting(earliest) is None or
                                               found[0] < first_parting(earliest)[0])):
                earliest = parts
        entries.append(entry)
    return {"stacks": entries, "conclusion": conclusion(entries, earliest)}


def _add_to_report(path: Path, section: dict[str, Any]) -> None:
    report = json.loads(path.read_text())
    report["stacks"] = section
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(report, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
