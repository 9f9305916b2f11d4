"""Comparing the replays of one episode on several stacks: where they part, and a one-line conclusion.

Each stack's replay is recorded step by step (`TrajectorySink`); two replays are then compared the way a
replay is compared with its recording (one plays the recording's part), with the same metric columns,
checks and tolerances, so "the replays part at step N (right_gripper)" means what a divergence means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from replay_check.profiles import Profile, Tolerances
from replay_check.steps import StepRecord

SIMULATOR_PACKAGES = ("mujoco", "pymunk")  # named in a stack's label, first one present


@dataclass
class TrajectorySink:
    """Keeps what a replay did at each step (state, object positions and angles), not its frames."""

    states: list[np.ndarray] = field(default_factory=list)
    objects: list[dict[str, np.ndarray]] = field(default_factory=list)
    angles: list[dict[str, float] | None] = field(default_factory=list)
    unstable: list[str | None] = field(default_factory=list)

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None:
        self.states.append(np.asarray(step.replayed_state, dtype=np.float64).copy())
        self.objects.append({k: np.asarray(v, dtype=np.float64).copy() for k, v in step.replayed_objects.items()})
        self.angles.append(dict(step.replayed_object_angles) if step.replayed_object_angles else None)
        self.unstable.append(step.unstable)

    def __getattr__(self, name: str):  # start / finish / abort of the sink lifecycle: nothing to do
        if name in ("start", "finish", "abort", "close"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def parting_steps(a: TrajectorySink, b: TrajectorySink, profile: Profile, tolerances: Tolerances,
                  state_names: list[str]) -> dict[str, int | None]:
    """group -> first step where replay `b` leaves replay `a` beyond the tolerances (None: never)."""
    from replay_check import divergence, metrics

    n = min(len(a.states), len(b.states))
    rows = []
    for t in range(n):
        pair = StepRecord(t=t, timestamp=0.0, recorded_state=a.states[t], replayed_state=b.states[t], action=None,
                          replayed_objects=b.objects[t], recorded_objects=a.objects[t],
                          recorded_object_angles=a.angles[t], replayed_object_angles=b.angles[t],
                          unstable=b.unstable[t] or a.unstable[t])
        rows.append(metrics.step_metrics(pair, state_names=state_names, groups=profile.state_groups, cameras=()))
    columns = {key: np.array([row.get(key, np.nan) for row in rows], dtype=np.float64) for key in rows[0]} if rows \
        else {}
    checks = divergence.checks_for(profile, tolerances, columns)
    found = divergence.find_divergences(columns, checks, tolerances.consecutive_steps)
    return {group: (None if step is None else int(step)) for group, step in found.items()}


def label(name: str, versions: dict[str, str]) -> str:
    """'aloha-2023 (mujoco 2.3.7)'."""
    for package in SIMULATOR_PACKAGES:
        version = versions.get(package) or versions.get(package.replace("-", "_"))
        if version:
            return f"{name} ({package} {version})"
    return name


def first_parting(parts: dict[str, int | None]) -> tuple[int, list[str]] | None:
    """The earliest parting step and the groups parting there."""
    steps = [s for s in parts.values() if s is not None]
    if not steps:
        return None
    first = min(steps)
    return first, sorted(g for g, s in parts.items() if s == first)


def conclusion(entries: list[dict[str, Any]], parts: dict[str, int | None] | None) -> str:
    """One sentence: on which stacks the recording reproduces (verdict pass/warn) and where the replays part."""
    good = [e["label"] for e in entries if e["status"] in ("pass", "warn")]
    bad = [e["label"] for e in entries if e["status"] not in ("pass", "warn")]
    if good and bad:
        head = f"reproduces on {', '.join(good)}, not on {', '.join(bad)}"
    elif good:
        head = f"reproduces on {' and '.join(good)}"
    else:
        head = f"reproduces on none of {', '.join(bad)}"
    if parts is None:
        return head
    first = first_parting(parts)
    if first is None:
        return f"{head}: the replays never part"
    step, groups = first
    return f"{head}: the replays part at step {step} ({', '.join(groups)})"
