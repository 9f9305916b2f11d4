"""Sensitivity ensemble: replay N perturbed copies in state mode and see whether the outcome holds.

An open-loop replay amplifies tiny differences. Each member starts from the initial object poses
drawn within the estimate's 1-sigma (`InitialState.uncertainty`; read exactly, a pose still carries
float32 rounding) and replays the actions re-rounded within float32 resolution. Members run in
"spawn" worker processes (one per core), each building its own adapter from the SimSpec. Outcomes
that split (some members reproduce the recording, some do not) mark a *marginal* episode.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from replay_check.sims import make_adapter
from replay_check.sims.base import InitialState, Pose, SimSpec
from replay_check.spawning import TrackerScope
from replay_check.stepping import step_through

MEMBER_AHEAD = 32  # steps a stack's worker may take ahead of a member's bookkeeping (replay_check.stepping)


@dataclass(frozen=True)
class Member:
    """One replayed copy: its robot states and object positions per step, success and any blow-up."""

    seed: int
    states: np.ndarray  # (L, state_dim)
    objects: dict[str, np.ndarray]  # name -> (L, 3)
    success: bool
    unstable: str | None


def perturb_initial(initial: InitialState, rng: np.random.Generator) -> InitialState:
    """Object poses drawn within their 1-sigma (position per axis, rotation about +z); float32 spacing
    stands in for an exactly read pose."""
    objects = {}
    for name, pose in initial.objects.items():
        sigma = initial.uncertainty.get(name)
        position = np.asarray(pose.position, dtype=np.float64)
        spread = (np.asarray(sigma.position, dtype=np.float64) if sigma is not None
                  else np.abs(np.spacing(position.astype(np.float32))).astype(np.float64))
        angle_sigma = float(sigma.angle) if sigma is not None else 0.0
        new_position = position + rng.normal(0.0, 1.0, 3) * spread
        quaternion = np.asarray(pose.quaternion, dtype=np.float64)
        if angle_sigma > 0:
            half = 0.5 * rng.normal(0.0, angle_sigma)
            turn = np.array([np.cos(half), 0.0, 0.0, np.sin(half)])
            quaternion = _quat_mul(turn, quaternion)
        objects[name] = Pose(new_position, quaternion)
    return InitialState(initial.robot, objects, initial.method, initial.residual, initial.details,
                        initial.uncertainty)


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def perturb_actions(actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Actions moved by up to half a float32 spacing: another equally valid rounding of the same rows."""
    spacing = np.abs(np.spacing(actions.astype(np.float32))).astype(np.float64)
    return actions + rng.uniform(-0.5, 0.5, actions.shape) * spacing


def _replay_member(adapter, initial: InitialState, actions: np.ndarray, seed: int) -> Member:
    rng = np.random.default_rng(seed)
    acts = perturb_actions(actions, rng)
    adapter.restore(perturb_initial(initial, rng))
    obs = adapter.observe()
    states = np.full((len(actions) + 1, obs.state.size), np.nan)
    objects = {n: np.full((len(actions) + 1, 3), np.nan) for n in obs.objects}
    success, unstable = obs.success, None
    stepping = step_through(adapter, acts, ahead=MEMBER_AHEAD)  # a stack's worker steps ahead in batches
    try:
        for t in range(len(actions) + 1):
            states[t] = obs.state
            for name, pose in obs.objects.items():
                objects[name][t] = pose.position
            if t == len(actions):
                break
            obs, _ = next(stepping)
            success = success or obs.success
            if obs.unstable:
                unstable = obs.unstable
                break
    finally:
        stepping.close()
    return Member(seed, states, objects, bool(success), unstable)


def _next_seed(counter, size: int) -> int | None:
    with counter.get_lock():
        seed = counter.value
        if seed >= size:
            return None
        counter.value = seed + 1
        return seed


def _drain(spec: SimSpec, initial: InitialState, actions: np.ndarray, counter, size: int, results,
           make=make_adapter) -> None:
    """Replay members while the shared counter has seeds left, putting each into `results`."""
    adapter = make(spec)
    try:
        while (seed := _next_seed(counter, size)) is not None:
            results.put(_replay_member(adapter, initial, actions, seed))
    finally:
        adapter.close()


def _worker(spec: SimSpec, initial: InitialState, actions: np.ndarray, counter, size: int, results) -> None:
    """Spawned worker body (module level, so spawn can find it)."""
    _drain(spec, initial, actions, counter, size, results)


class _ListQueue(list):
    def put(self, item) -> None:
        self.append(item)


def _can_spawn() -> bool:
    """Daemonic processes (validate's episode workers) may not have children: run members in-process."""
    return not multiprocessing.current_process().daemon


def run_ensemble(spec: SimSpec, initial: InitialState, actions: np.ndarray, size: int,
                 processes: int | None = None, make=None) -> tuple[list[Member], dict[str, Any]]:
    """`size` perturbed state-mode replays of all `actions` over `processes` processes (default: one per
    core): this process and processes-1 spawned workers take members from one queue. A worker still
    importing the simulator when this process has run every member is stopped unused, so a short
    ensemble never waits for process start-up (seconds on a loaded machine) it cannot amortise.
    `make` (an adapter factory, e.g. a stack's proxy) runs every member through it, in this process."""
    start = time.perf_counter()
    workers = max(1, min(size, processes or os.cpu_count() or 1)) - 1
    if not _can_spawn() or make is not None:
        workers = 0
    scope = TrackerScope()
    try:
        members, in_workers = _members(scope.context, spec, initial, actions, size, workers, make)
    finally:
        scope.close()  # after _members returned: its queue and counter (semaphores) are released by then
    return sorted(members, key=lambda m: m.seed), {
        "members": size, "processes": 1 + workers, "members_in_workers": in_workers,
        "seconds": time.perf_counter() - start}


def _members(context, spec: SimSpec, initial: InitialState, actions: np.ndarray, size: int, workers: int,
             make) -> tuple[list[Member], int]:
    """(every member, how many ran in a worker): this process and `workers` spawned processes take seeds
    from one counter."""
    counter, results = context.Value("i", 0), context.Queue()
    procs = [context.Process(target=_worker, args=(spec, initial, actions, counter, size, results), daemon=True)
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    own = _ListQueue()
    try:
        _drain(spec, initial, actions, counter, size, own, make or make_adapter)
        members = list(own)
        while len(members) < size:
            try:
                members.append(results.get(timeout=1.0))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    raise RuntimeError(f"an ensemble worker died; {len(members)} of {size} members done") from None
    finally:
        for proc in procs:  # every member is in (or we are failing): idle or still-importing workers go
            proc.terminate()
            proc.join()
        results.close()
        results.join_thread()
    return members, size - len(own)


@dataclass
class EnsembleOutcome:
    """What the members did against the recording: statuses, success count and per-group spread."""

    size: int
    statuses: list[str]
    successes: list[bool]
    bands: dict[str, tuple[np.ndarray, np.ndarray]]  # group -> per-step (min, max) error over members
    spread: dict[str, dict[str, Any]]  # group -> {max, step}
    cost: dict[str, Any]

    def split(self, nominal: str | None = None) -> bool:
        """Outcomes differ between copies (or from the `nominal` replay's status): success or verdict."""
        return len(set(self.successes)) > 1 or len(set(self.statuses) | ({nominal} if nominal else set())) > 1

    def line(self) -> str:
        counts = ", ".join(f"{self.statuses.count(s)} {s}" for s in ("pass", "warn", "fail") if s in self.statuses)
        return f"success in {sum(self.successes)} of {self.size} perturbed copies ({counts})"

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "processes": self.cost.get("processes"), "statuses": self.statuses,
                "successes": self.successes, "reproduction": self.line(), "spread": self.spread}


def assess(members: list[Member], episode, profile, tolerances, recorded_success: bool | None,
           cost: dict[str, Any]) -> EnsembleOutcome:
    """Each member judged like a state-mode replay (same checks and verdict rule), plus error bands."""
    from replay_check import divergence
    from replay_check.families import family_of

    length = episode.length
    from_env = family_of(profile).objects_from_environment_state
    recorded_objects = None
    if episode.environment_state is not None:
        rows = [from_env(row, profile.objects) for row in episode.environment_state]
        recorded_objects = {n: np.array([r[n].position for r in rows]) for n in profile.objects}
    statuses, successes, per_group = [], [], {}
    for member in members:
        columns: dict[str, np.ndarray] = {}
        for group, (lo, hi) in profile.state_groups.items():
            columns[f"group/{group}"] = np.max(np.abs(member.states[:length, lo:hi] - episode.state[:, lo:hi]), axis=1)
        for name, positions in member.objects.items():
            if recorded_objects is not None and name in recorded_objects:
                columns[f"object_err/{name}"] = np.linalg.norm(positions[:length] - recorded_objects[name], axis=1)
        if member.unstable:
            columns["unstable"] = np.where(np.isnan(member.states[:length, 0]), 1.0, 0.0)
        checks = divergence.checks_for(profile, tolerances, columns)
        found = divergence.find_divergences(columns, checks, tolerances.consecutive_steps)
        verdict = divergence.decide_verdict(found, {}, length=length, tolerances=tolerances,
                                            replayed_success=member.success, recorded_success=recorded_success,
                                            unstable_step=None)
        statuses.append(verdict.status)
        successes.append(member.success)
        for key, values in columns.items():
            per_group.setdefault(key, []).append(values)
    for name in members[0].objects if members else ():
        positions = np.array([m.objects[name][:length] for m in members])  # (N, L, 3)
        per_group[f"object_spread/{name}"] = list(np.linalg.norm(positions - np.nanmean(positions, axis=0), axis=2))
    bands, spread = {}, {}
    for key, stack in per_group.items():
        array = np.array(stack)
        low, high = np.nanmin(array, axis=0), np.nanmax(array, axis=0)
        bands[key] = (low, high)
        width = high - low
        step = int(np.nanargmax(width)) if np.isfinite(width).any() else None
        spread[key] = {"max": None if step is None else float(width[step]), "step": step}
    return EnsembleOutcome(len(members), statuses, successes, bands, spread, cost)
