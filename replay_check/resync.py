"""Re-synced replay: every K steps the robot is set back to the recorded state, then stepped once.

An open-loop replay lets one early difference grow; re-syncing measures what each step does on its
own. After a reset at row t (joints from the recording, velocities and objects as simulated) and
action t, the robot groups are compared with row t+1: the *one-step error*. With the recording's
object poses (environment_state), each object's per-step displacement is compared too. A data fault
(actions offset from step k, another episode's actions) shows as a sustained one-step error from its
step on; a physics difference as isolated or contact-phase one-step errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from replay_check import metric_table
from replay_check.contacts import ContactTimeline
from replay_check.dataset.episode import Episode
from replay_check.families import family_of
from replay_check.profiles import Profile, Tolerances
from replay_check.sims import make_adapter
from replay_check.sims.base import InitialState, SimSpec

# A group's one-step limit as a fraction of its open-loop tolerance. Measured (ALOHA transfer cube,
# shared sample ep 0, K=1): a faithful replay's one-step errors stay <= 0.0012 rad on arms and
# <= 0.005 on grippers; an action offset of 0.05 rad from step k reads 0.004-0.006 rad on every step
# after k.
ONE_STEP_FRACTION = 0.1
# A data jump: before it, one-step errors stay below QUIET_FRACTION of the limit (p95); after it they are
# beyond the limit on SUSTAINED of the SUSTAIN_WINDOW x consecutive_steps steps. A low-friction grasp
# (friction x0.2) reads p95 0.39 of the gripper limit before a brief excursion: physics, not data.
QUIET_FRACTION = 0.25
SUSTAIN_WINDOW = 4
SUSTAINED = 0.75


@dataclass(frozen=True)
class Jump:
    """A sustained rise of one group's one-step error: its first step, value there, limit, earlier level."""

    group: str
    step: int
    value: float
    limit: float
    unit: str
    earlier_p95: float | None  # of the one-step errors before `step` (None: the jump is at the start)

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        before = ("from the start" if self.earlier_p95 is None
                  else f"earlier one-step errors p95 {self.earlier_p95:.3g}{unit}")
        return (f"one-step error jumps at step {self.step} on {self.group}: {self.value:.3g}{unit} > limit "
                f"{self.limit:.3g}{unit} ({before})")


@dataclass
class ResyncResult:
    every: int
    errors: dict[str, np.ndarray]  # group -> one-step error at step t+1 (in the group's unit); NaN elsewhere
    limits: dict[str, float]
    units: dict[str, str]
    robot_groups: tuple[str, ...]
    contact_phase: np.ndarray
    contacts: list[dict[str, Any]]
    seconds: float
    first_exceeding: dict[str, int | None] = field(default_factory=dict)

    def jump(self, consecutive: int) -> Jump | None:
        """The earliest group whose one-step error stays beyond its limit (for `consecutive` measured steps,
        and on most steps of the window after) while the steps before were well below it."""
        best: Jump | None = None
        for group in self.robot_groups + tuple(g for g in self.errors if g not in self.robot_groups):
            values, limit = self.errors[group], self.limits[group]
            start = _first_run(values, limit, consecutive)
            if start is None:
                continue
            earlier = values[:start][np.isfinite(values[:start])]
            p95 = float(np.percentile(earlier, 95)) if earlier.size >= 5 else None
            if p95 is not None and p95 >= QUIET_FRACTION * limit:
                continue
            window = values[start:start + SUSTAIN_WINDOW * consecutive]
            window = window[np.isfinite(window)]
            if np.mean(window > limit) < SUSTAINED:
                continue
            if best is None or start < best.step:
                best = Jump(group, start, float(values[start]), limit, self.units[group], p95)
        return best

    def contact_concentration(self) -> dict[str, float | None]:
        """Per group, mean one-step error in contact phases / outside them (None without both)."""
        out: dict[str, float | None] = {}
        for group, values in self.errors.items():
            finite = np.isfinite(values)
            inside, outside = values[finite & self.contact_phase], values[finite & ~self.contact_phase]
            if inside.size < 3 or outside.size < 3 or float(np.mean(outside)) <= 0:
                out[group] = None
            else:
                out[group] = float(np.mean(inside) / np.mean(outside))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "limits": self.limits,
            "first_exceeding": self.first_exceeding,
            "max": {g: _nanmax(v) for g, v in self.errors.items()},
            "p95": {g: _nanp95(v) for g, v in self.errors.items()},
            "contact_concentration": self.contact_concentration(),
        }


def _nanmax(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else None


def _nanp95(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, 95)) if finite.size else None


def _first_run(values: np.ndarray, limit: float, k: int) -> int | None:
    """First step of `k` consecutive measured values beyond `limit` (NaN neither breaks nor extends)."""
    run, start = 0, None
    for t, v in enumerate(values):
        if not np.isfinite(v):
            continue
        if v > limit:
            if run == 0:
                start = t
            run += 1
            if run >= k:
                return start
        else:
            run = 0
    return None


def one_step_limits(profile: Profile, tolerances: Tolerances) -> tuple[dict[str, float], dict[str, str]]:
    """Per state group and object: ONE_STEP_FRACTION of its open-loop limit, in the metric's unit."""
    declared = family_of(profile)
    columns = metric_table.columns_for(profile, object_units=declared.object_units, planar=False)
    limits, units = {}, {}
    for col in columns:
        group = col.group
        if group is None or col.metric.key not in ("object_position",) and group not in profile.state_groups:
            continue
        limits[group] = ONE_STEP_FRACTION * col.limit(tolerances)
        units[group] = col.metric.unit
    return limits, units


def resync_replay(episode: Episode, profile: Profile, spec: SimSpec, initial: InitialState, tolerances: Tolerances,
                  every: int = 1, make: Callable[[SimSpec], Any] = make_adapter) -> ResyncResult:
    """Replay in state mode, re-syncing the robot to the recording every `every` steps (see module doc).

    `make` builds the adapter (a stack's proxy for a replay on another stack)."""
    if every < 1:
        raise ValueError(f"resync interval must be >= 1, got {every}")
    start = time.perf_counter()
    limits, units = one_step_limits(profile, tolerances)
    groups = dict(profile.state_groups)
    from_env = family_of(profile).objects_from_environment_state
    scale = 1000.0 if family_of(profile).object_units == "m" else 1.0
    length = episode.length
    errors = {g: np.full(length, np.nan) for g in limits}
    timeline = ContactTimeline()
    adapter = make(spec)
    try:
        adapter.restore(initial)
        previous = adapter.observe().objects
        recorded_prev = None
        if episode.environment_state is not None:
            recorded_prev = from_env(episode.environment_state[0], profile.objects)
        for t in range(length - 1):
            synced = t % every == 0
            if synced and t > 0:
                adapter.set_robot_state(episode.state[t], keep_velocity=True)
            sim = adapter.step(episode.action[t])
            timeline.add(t + 1, adapter.contacts())
            if sim.unstable:
                break
            if synced:
                for group, (lo, hi) in groups.items():
                    errors[group][t + 1] = float(np.max(np.abs(sim.state[lo:hi] - episode.state[t + 1][lo:hi])))
            if recorded_prev is not None:
                recorded = from_env(episode.environment_state[t + 1], profile.objects)
                for name in profile.objects:
                    moved = sim.objects[name].position - previous[name].position
                    recorded_moved = recorded[name].position - recorded_prev[name].position
                    errors[f"object/{name}"][t + 1] = scale * float(np.linalg.norm(moved - recorded_moved))
                recorded_prev = recorded
            previous = sim.objects
    finally:
        adapter.close()
    errors = {g: v for g, v in errors.items() if np.isfinite(v).any()}
    result = ResyncResult(
        every=every, errors=errors, limits={g: limits[g] for g in errors}, units={g: units[g] for g in errors},
        robot_groups=tuple(g for g in groups if g in errors), contact_phase=timeline.phase(length),
        contacts=timeline.to_list(), seconds=time.perf_counter() - start,
    )
    result.first_exceeding = {g: _first_exceeding(v, result.limits[g]) for g, v in errors.items()}
    return result


def _first_exceeding(values: np.ndarray, limit: float) -> int | None:
    over = np.flatnonzero(np.nan_to_num(values, nan=-np.inf) > limit)
    return int(over[0]) if over.size else None
