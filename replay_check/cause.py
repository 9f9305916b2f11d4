"""Why a replay diverged: one cause from measurements, with the evidence behind it.

Causes, tested in this order on a replay that did not pass (each from a measurement, never a guess):

- `data`: the recorded video is shifted against the replay (frame-offset detection), or the
  re-synced replay's one-step error rises on a robot group at some step and stays up while the
  steps before were clean and no object had diverged yet (actions offset from step k, rows of
  another episode: the jump is then at the start).
- `rendering`: only image groups diverge; joints and objects stay within tolerance and the task
  outcome agrees.
- `initial_state`: an object's error at the first compared step is beyond the estimate's
  uncertainty (3 sigma, and the object measurement's own floor).
- `marginal`: a sensitivity ensemble (poses within the uncertainty, float32 re-rounding) splits:
  some copies reproduce the recording, some do not. Reported as warn unless strict.
- `physics`: none of the above; the ensemble reproduces the failure in every copy and the one-step
  errors show no data jump (their concentration in contact phases is part of the evidence).

Analyses run automatically on a replay that did not pass: a re-synced pass (K=1, state mode, about
one state replay of physics), then the ensemble only when the cheaper evidence leaves the cause open.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from replay_check.dataset.episode import Episode
from replay_check.ensemble import EnsembleOutcome, assess, run_ensemble
from replay_check.families import family_of
from replay_check.profiles import Profile
from replay_check.resync import ResyncResult, resync_replay
from replay_check.sims import make_adapter
from replay_check.sims.base import SimSpec
from replay_check.steps import ReplayResult

CAUSES = ("initial_state", "marginal", "physics", "data", "rendering")
AUTO_ENSEMBLE = 8
SIGMAS = 3.0
# The floor below which a step-0 object error says nothing, as a fraction of the object tolerance:
# an exact read (environment_state) vs an image measurement of both frames (a few mm of meter noise).
EXACT_FLOOR, MEASURED_FLOOR = 0.01, 0.4
# Below this action-response cosine the actions do not belong to the states (see `action_response`).
RESPONSE_COSINE = 0.5
# An arm whose one-step error is beyond its limit on this share of the steps does not follow its actions.
PERSISTENT_SHARE = 0.5


@dataclass
class Diagnosis:
    cause: str | None
    evidence: list[str] = field(default_factory=list)
    resync: ResyncResult | None = None
    ensemble: EnsembleOutcome | None = None
    costs: dict[str, float] = field(default_factory=dict)

    @property
    def line(self) -> str | None:
        """The one-line cause a person reads ("data: one-step error jumps at step 120 on right_arm ...")."""
        if self.cause is None:
            return None
        return f"{self.cause}: {self.evidence[0]}" if self.evidence else self.cause


def _diverged(result: ReplayResult) -> dict[str, int]:
    return {g: s for g, s in result.divergence.items() if s is not None}


def _image_group(group: str) -> bool:
    return group.startswith("image/")


def _initial_object_excess(result: ReplayResult, profile: Profile) -> list[str]:
    """Objects whose first compared error is beyond max(3 sigma, the measurement's floor)."""
    tol = result.settings.tolerances
    units = family_of(profile).object_units
    exact = str(result.object_measurement).startswith("environment_state")
    floor_fraction = EXACT_FLOOR if exact else MEASURED_FLOOR
    tolerance = tol.object_mm / 1000.0 if units == "m" else tol.block_px
    window = tol.consecutive_steps + 1
    found = []
    for name in profile.objects:
        values = result.metrics.get(f"object_err/{name}")
        if values is None:
            continue
        head = values[:window][np.isfinite(values[:window])]
        if not head.size:
            continue
        sigma = result.initial_state.uncertainty.get(name)
        sigma_norm = float(np.linalg.norm(sigma.position)) if sigma is not None else 0.0
        limit = max(SIGMAS * sigma_norm, floor_fraction * tolerance)
        if float(head[0]) > limit:
            scale, unit = (1000.0, "mm") if units == "m" else (1.0, "px")
            found.append(f"{name} is {head[0] * scale:.3g} {unit} off at the first compared step, beyond the "
                         f"initial estimate's uncertainty ({SIGMAS:g} sigma = {SIGMAS * sigma_norm * scale:.3g} {unit}"
                         f", measurement floor {floor_fraction * tolerance * scale:.3g} {unit})")
    return found


def _data_from_offsets(result: ReplayResult) -> list[str]:
    offsets = result.video_offsets or {}
    return [f"recorded video {key} is shifted by {o['offset']:+d} frame(s) against the replay "
            f"(alignment cost {o['cost_best']:.3g} vs {o['cost_aligned']:.3g} aligned)"
            for key, o in offsets.items()]


def action_response(episode: Episode, profile: Profile) -> dict[str, float]:
    """Per arm/agent group, the cosine between action[t] - state[t] and state[t+1] - state[t] over the episode.

    A position-controlled robot moves toward its command: 0.75-0.8 on every faithful ALOHA recording
    measured (sweeps, the shared scripted samples), 0.99 on the shared PushT sample; with another
    episode's actions -0.07-0.20 (ALOHA) and 0.08-0.35 (PushT). Grippers are left out (their command
    and state scales differ: 0.1-0.9 on faithful recordings).
    """
    out = {}
    for group, (lo, hi) in profile.state_groups.items():
        if profile.state_kinds.get(group) not in ("arm", "agent") or episode.length < 3:
            continue
        state, action = episode.state[:, lo:hi], episode.action[:, lo:hi]
        moved, command = state[1:] - state[:-1], action[:-1] - state[:-1]
        norm = float(np.sqrt(np.sum(moved * moved) * np.sum(command * command)))
        if norm > 0:
            out[group] = float(np.sum(moved * command) / norm)
    return out


def _persistent_arm_errors(resync: ResyncResult, profile: Profile) -> list[str]:
    """Arms (or the agent) whose one-step error is beyond its limit on most steps: the states do not follow the
    actions. Measured (K=1): another scripted episode's actions 74-77% of steps beyond; friction x0.2 and
    timesteps of 1-4 ms at most 7%; faithful replays 0%."""
    lines = []
    for group in resync.robot_groups:
        if profile.state_kinds.get(group) not in ("arm", "agent"):
            continue
        values = resync.errors[group][np.isfinite(resync.errors[group])]
        share = float(np.mean(values > resync.limits[group])) if values.size else 0.0
        if share >= PERSISTENT_SHARE:
            lines.append(f"{group}'s one-step error is beyond its limit ({resync.limits[group]:.3g} "
                         f"{resync.units[group]}) on {share:.0%} of the steps: the recorded states do not follow "
                         "the recorded actions")
    return lines


def _data_from_resync(resync: ResyncResult, result: ReplayResult, episode: Episode, profile: Profile) -> list[str]:
    """A clean jump at step k; else arms off their actions on most steps, or a jump from the start, each only
    when the recorded actions do not drive the recorded states (a changed robot response is physics)."""
    jump = resync.jump(result.settings.tolerances.consecutive_steps)
    response = action_response(episode, profile)
    mismatched = bool(response) and min(response.values()) < RESPONSE_COSINE
    if not (jump is not None and jump.group in resync.robot_groups and jump.earlier_p95 is not None) and mismatched:
        persistent = _persistent_arm_errors(resync, profile)
        if persistent:
            group = min(response, key=response.get)
            return [*persistent, f"action-response cosine {response[group]:.2f} on {group} (faithful "
                                 "recordings: >= 0.75)"]
    if jump is None or jump.group not in resync.robot_groups:
        return []
    objects_first = [s for g, s in _diverged(result).items() if g.startswith("object") and s <= jump.step]
    if objects_first:
        return []  # the robot meets a different scene: a consequence, not a data fault
    if profile.state_kinds.get(jump.group) == "gripper" and resync.contact_phase[jump.step]:
        return []  # a gripper closing on an object: contact physics (a 4 ms timestep does this), not data
    if jump.earlier_p95 is not None:
        return [jump.describe()]
    # From the start: rows of another episode, or a robot that responds differently (physics)?
    if not mismatched:
        return []
    group = min(response, key=response.get)
    return [jump.describe(), f"the recorded actions do not drive the recorded states: action-response cosine "
                             f"{response[group]:.2f} on {group} (faithful recordings: >= 0.75)"]


def _physics_evidence(resync: ResyncResult | None, ensemble: EnsembleOutcome | None) -> list[str]:
    """The headline first (contact concentration and the ensemble in one sentence), then the details."""
    lines = []
    if ensemble is not None:
        lines.append(f"the outcome holds within the initial state's uncertainty: {ensemble.line()}")
    if resync is not None and resync.errors:
        worst = max(resync.errors, key=lambda g: np.nanmax(resync.errors[g]) / max(resync.limits[g], 1e-300))
        lines.append(f"no data jump in the re-synced replay (K={resync.every}); largest one-step error "
                     f"{np.nanmax(resync.errors[worst]):.3g} {resync.units[worst]} on {worst} "
                     f"(limit {resync.limits[worst]:.3g})")
        ratios = {g: r for g, r in resync.contact_concentration().items() if r is not None}
        if ratios:
            group = max(ratios, key=ratios.get)
            lines.append(f"one-step errors in contact phases are {ratios[group]:.3g}x those outside on {group}")
    if resync is not None and ensemble is not None:
        copies = ensemble.statuses.count(ensemble.statuses[0])
        lines.insert(0, f"no data jump or initial-state excess, and the outcome holds in "
                        f"{copies} of {ensemble.size} perturbed copies: the simulator behaves differently")
    return lines


def diagnose(result: ReplayResult, episode: Episode, profile: Profile, spec: SimSpec,
             processes: int | None = None, make: Callable[[SimSpec], Any] | None = None) -> Diagnosis:
    """The cause of `result` (None for a pass that no requested analysis contradicts).

    `result.settings.resync` / `.ensemble`: None = automatic on a replay that did not pass, 0 = never,
    N = always (K steps between re-syncs; N copies over `processes` processes, default one per core).
    `make` builds adapters for a replay on another stack (then the ensemble runs in this process).
    """
    options = result.settings
    status = result.verdict.status
    failing = status != "pass"
    diagnosis = Diagnosis(cause=None)
    want_resync = options.resync if options.resync is not None else (1 if failing else 0)
    if want_resync:
        diagnosis.resync = resync_replay(episode, profile, spec, result.initial_state, result.settings.tolerances,
                                         every=want_resync, make=make or make_adapter)
        diagnosis.costs["resync_seconds"] = diagnosis.resync.seconds
    if failing:
        cause, evidence = _cheap_cause(result, episode, profile, diagnosis.resync)
        if cause is not None:
            diagnosis.cause, diagnosis.evidence = cause, evidence
    want_ensemble = options.ensemble if options.ensemble is not None else (
        AUTO_ENSEMBLE if failing and diagnosis.cause is None else 0)
    if want_ensemble:
        diagnosis.ensemble = _ensemble(result, episode, profile, spec, want_ensemble, processes, make)
        diagnosis.costs["ensemble_seconds"] = diagnosis.ensemble.cost["seconds"]
        if diagnosis.ensemble.split(status) and diagnosis.cause is None:
            diagnosis.cause = "marginal"
            diagnosis.evidence = [f"the outcome flips within the initial state's uncertainty and float32 rounding: "
                                  f"{diagnosis.ensemble.line()} (this replay: {status})"]
    if failing and diagnosis.cause is None:
        diagnosis.cause = "physics"
        diagnosis.evidence = _physics_evidence(diagnosis.resync, diagnosis.ensemble) or [
            "no data, rendering, initial-state or marginal evidence (no analysis ran)"]
    return diagnosis


def _cheap_cause(result: ReplayResult, episode: Episode, profile: Profile, resync: ResyncResult | None
                 ) -> tuple[str | None, list[str]]:
    """data, rendering or initial_state from the replay's own columns and the re-synced pass."""
    evidence = _data_from_offsets(result)
    if evidence:
        return "data", evidence
    if resync is not None:
        evidence = _data_from_resync(resync, result, episode, profile)
        if evidence:
            return "data", evidence
    diverged = _diverged(result)
    unstable = diverged.get("unstable") or next(
        (int(t) for t in np.flatnonzero(np.nan_to_num(result.metrics.get("unstable", np.zeros(1))) >= 1)), None)
    if unstable is not None:
        return "physics", [f"the simulation blew up at step {unstable} with no data fault before it"]
    lost = result.summary.get("recorded_success") and result.summary.get("replayed_success") is False
    images = sorted(g for g in diverged if _image_group(g))
    others = sorted(g for g in diverged if not _image_group(g))
    measured = str(result.object_measurement).startswith("image measurement")
    # Objects measured in the images see the images' change too: they do not contradict rendering, as
    # long as the images went first.
    seen_in_images = measured and images and all(
        g.startswith("object") and diverged[g] >= min(diverged[i] for i in images) for g in others)
    if images and (not others or seen_in_images) and not lost:
        worst = result.summary.get("image_psnr_min")
        state = result.summary.get("state_max_abs")
        return "rendering", [
            f"{', '.join(images)} diverge(s) from step {min(diverged[g] for g in images)} (PSNR min "
            f"{_fmt(worst)} dB) while joints (max |error| {_fmt(state)}) and objects stay within tolerance"]
    excess = _initial_object_excess(result, profile)
    if excess and (lost or any(g.startswith("object") for g in others)):
        return "initial_state", excess
    return None, []


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _ensemble(result: ReplayResult, episode: Episode, profile: Profile, spec: SimSpec, size: int,
              processes: int | None, make: Callable[[SimSpec], Any] | None) -> EnsembleOutcome:
    state_spec = dataclasses.replace(spec, cameras={})
    members, cost = run_ensemble(state_spec, result.initial_state, episode.action, size, processes, make)
    return assess(members, episode, profile, result.settings.tolerances, result.summary.get("recorded_success"),
                  cost)


def apply(result: ReplayResult, diagnosis: Diagnosis, *, strict: bool = False) -> ReplayResult:
    """`result` with verdict.cause/evidence set; a marginal fail becomes warn unless strict."""
    verdict = result.verdict
    status = verdict.status
    reasons = list(verdict.reasons)
    if diagnosis.cause == "marginal" and not strict and status == "fail":
        status = "warn"
        reasons.append("marginal episode: reported as warn (use --strict to fail it)")
    elif diagnosis.cause == "marginal" and status == "pass":
        status = "fail" if strict else "warn"
    new = dataclasses.replace(verdict, status=status, reasons=tuple(reasons), cause=diagnosis.cause,
                              evidence=tuple(diagnosis.evidence))
    summary = {
        "resync": diagnosis.resync.to_dict() if diagnosis.resync else None,
        "ensemble": diagnosis.ensemble.to_dict() if diagnosis.ensemble else None,
    }
    contacts = result.contacts
    if contacts is None and diagnosis.resync is not None:
        contacts = diagnosis.resync.contacts
    return dataclasses.replace(result, verdict=new, diagnosis=summary, diagnosis_seconds=dict(diagnosis.costs),
                               contacts=contacts, metrics={**result.metrics, **_columns(diagnosis)})


def _columns(diagnosis: Diagnosis) -> dict[str, np.ndarray]:
    """Per-step series for steps.parquet and Rerun: one-step errors (`resync/<group>`, in the group's unit)
    and the ensemble's band (`ensemble/<series>/min|max`: error against the recording over the copies)."""
    out = {}
    if diagnosis.resync is not None:
        out.update({f"resync/{group}": values for group, values in diagnosis.resync.errors.items()})
    if diagnosis.ensemble is not None:
        for key, (low, high) in diagnosis.ensemble.bands.items():
            out[f"ensemble/{key}/min"], out[f"ensemble/{key}/max"] = low, high
    return out


def run(result: ReplayResult, episode: Episode, profile: Profile, spec: SimSpec,
        processes: int | None = None, make: Callable[[SimSpec], Any] | None = None) -> tuple[ReplayResult, Diagnosis]:
    """diagnose + apply (strictness from the settings); wall times go to result.diagnosis_seconds."""
    start = time.perf_counter()
    diagnosis = diagnose(result, episode, profile, spec, processes, make)
    diagnosis.costs["total"] = time.perf_counter() - start
    return apply(result, diagnosis, strict=result.settings.strict), diagnosis
