"""From per-step metric columns to divergences, a summary and a pass / warn / fail verdict.

A *check* watches one metric column of one group (an arm, a gripper, an object, a camera) against
its tolerance. The group diverges at the first step of `k` consecutive *measured* steps beyond the
limit. NaN means "not measured on this step" (image stride, a frame without an object estimate, the
steps after a blow-up): it neither breaks nor extends a run, so with image stride K a divergence
needs k compared frames in a row. A run still open when the episode ends shorter than k is not a
divergence. The blow-up check ("unstable") needs a single step.

Group names (keys of `divergence` in report.json): the profile's state groups (`left_arm`,
`right_gripper`, `agent` ...), `object/<name>`, `object_angle/<name>`, `image/<camera>`, `unstable`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from replay_check import metric_table
from replay_check.metric_table import IMAGE_MAD, IMAGE_PSNR, IMAGE_SSIM, OBJECT_ANGLE, OBJECT_GAP, PSNR_CAP_DB
from replay_check.profiles import Profile, Tolerances
from replay_check.steps import Verdict

__all__ = ["PSNR_CAP_DB", "Check", "Divergences", "Onset", "checks_for", "decide_verdict", "find_divergences",
           "first_divergence", "summarize"]


@dataclass(frozen=True)
class Check:
    """One group's metric column and its limit; `scale` converts column units to `unit` for messages."""

    group: str
    column: str
    limit: float  # in column units
    higher_is_worse: bool = True
    unit: str = ""
    scale: float = 1.0
    consecutive: int | None = None  # None: the tolerances' consecutive_steps
    label: str = "|error|"


@dataclass(frozen=True)
class Onset:
    """Where and how a group diverged: its first step, the value there and the limit (in `unit`)."""

    group: str
    step: int
    value: float
    limit: float
    unit: str
    run: int
    label: str

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.group == "unstable":
            return f"the simulation became unstable (physics blew up) at step {self.step}"
        relation = "<" if self.label == "PSNR" else ">"
        return (
            f"{self.group} diverges at step {self.step}: {self.label} {_fmt(self.value)}{unit} "
            f"{relation} limit {_fmt(self.limit)}{unit} for {self.run} consecutive measured step(s)"
        )


class Divergences(dict[str, int | None]):
    """group -> first diverging step (None: never), with the `Onset` of each diverging group in `details`."""

    def __init__(self, steps: dict[str, int | None] | None = None, details: dict[str, Onset] | None = None):
        super().__init__(steps or {})
        self.details: dict[str, Onset] = dict(details or {})


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def checks_for(profile: Profile, tolerances: Tolerances, columns: Iterable[str]) -> list[Check]:
    """The checks that apply to the columns a replay produced (absent columns get no check).

    Units, directions and tolerance keys come from the metric table; see `replay_check.metric_table`.
    """
    from replay_check.families import family_of

    declared = family_of(profile)
    present = set(columns)
    table = metric_table.columns_for(profile, object_units=declared.object_units, planar=declared.planar,
                                     cameras=sorted(profile.cameras))
    checks = []
    for col in table:
        metric = col.metric
        if metric.group is None or col.column not in present:
            continue
        checks.append(Check(col.group, col.column, col.limit(tolerances) / metric.scale,
                            higher_is_worse=metric.higher_is_worse, unit=metric.unit, scale=metric.scale,
                            consecutive=metric.consecutive, label=metric.label))
    return checks


def _beyond(values: np.ndarray, limit: float, higher_is_worse: bool) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return values > limit if higher_is_worse else values < limit


def first_divergence(values: np.ndarray, limit: float, k: int, higher_is_worse: bool = True) -> int | None:
    """First step of `k` consecutive measured values beyond `limit`; NaN steps are skipped, not counted."""
    if k < 1:
        raise ValueError(f"consecutive steps must be >= 1, got {k}")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    measured = np.flatnonzero(~np.isnan(values))
    if measured.size < k:
        return None
    bad = _beyond(values[measured], limit, higher_is_worse).astype(np.int64)
    if k == 1:
        hits = np.flatnonzero(bad)
        return int(measured[hits[0]]) if hits.size else None
    windows = np.convolve(bad, np.ones(k, dtype=np.int64), mode="valid")  # windows[i] = bad[i:i+k].sum()
    hits = np.flatnonzero(windows == k)
    return int(measured[hits[0]]) if hits.size else None


def _onset(check: Check, values: np.ndarray, step: int, k: int) -> Onset:
    """The worst value within the k-run starting at `step`, for the reason sentence."""
    measured = np.flatnonzero(~np.isnan(values))
    start = int(np.searchsorted(measured, step))
    run = values[measured[start:start + k]]
    worst = float(run.max() if check.higher_is_worse else run.min())
    scale = check.scale
    return Onset(check.group, step, worst * scale, check.limit * scale, check.unit, k, check.label)


def find_divergences(columns: dict[str, np.ndarray], checks: list[Check], k: int) -> Divergences:
    """Every checked group's first diverging step (None: never); details carry values for reasons."""
    found = Divergences()
    for check in checks:
        values = np.asarray(columns[check.column], dtype=np.float64)
        need = check.consecutive or k
        step = first_divergence(values, check.limit, need, check.higher_is_worse)
        previous = found.get(check.group)
        if step is not None and (previous is None or step < previous):
            found[check.group] = step
            found.details[check.group] = _onset(check, values, step, need)
        else:
            found.setdefault(check.group, None)
    return found


def _finite(value: Any) -> Any:
    """Python float, with NaN -> None (keeps report.json strict)."""
    value = float(value)
    return None if math.isnan(value) else value


def _nan_stat(fn, values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return _finite(fn(values)) if values.size else None


def _columns_of(columns: dict[str, np.ndarray], metric: metric_table.Metric) -> dict[str, np.ndarray]:
    """{name: values} of the columns declared by `metric`."""
    return {name: columns[column] for name, column in metric_table.named(columns, metric).items()}


def _state_summary(columns: dict[str, np.ndarray], state_names: Sequence[str]) -> dict[str, Any]:
    empty = np.array([])
    per_joint = {name: _nan_stat(np.max, columns.get(f"state_err/{name}", empty)) for name in state_names}
    groups = {g: _nan_stat(np.max, v) for g, v in _columns_of(columns, metric_table.state_group_metric("arm")).items()}
    state_rms = columns.get("state_rms", np.array([]))
    known = [v for v in per_joint.values() if v is not None]
    return {
        "state_rmse": _nan_stat(lambda v: np.sqrt(np.mean(np.square(v))), state_rms),
        "state_max_abs": max(known) if known else None,
        "per_joint_max_abs": per_joint,
        "per_group_max_abs": groups,
        "steps_replayed": int(np.count_nonzero(~np.isnan(np.asarray(state_rms, dtype=np.float64)))),
    }


def _image_summary(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    psnr = _columns_of(columns, IMAGE_PSNR)
    ssim = _columns_of(columns, IMAGE_SSIM)
    mad = _columns_of(columns, IMAGE_MAD)
    capped = {cam: np.minimum(np.asarray(v, dtype=np.float64), PSNR_CAP_DB) for cam, v in psnr.items()}
    all_psnr = np.concatenate(list(capped.values())) if capped else np.array([])
    all_ssim = np.concatenate(list(ssim.values())) if ssim else np.array([])
    all_mad = np.concatenate(list(mad.values())) if mad else np.array([])
    raw = np.concatenate([np.asarray(v, dtype=np.float64) for v in psnr.values()]) if psnr else np.array([])
    return {
        "image_psnr_mean": _nan_stat(np.mean, all_psnr),
        "image_psnr_min": _nan_stat(np.min, all_psnr),
        "image_ssim_mean": _nan_stat(np.mean, all_ssim),
        "image_ssim_min": _nan_stat(np.min, all_ssim),
        "image_mad_mean": _nan_stat(np.mean, all_mad),
        "image_frames_compared": int(np.count_nonzero(~np.isnan(raw))),
        "image_frames_identical": int(np.count_nonzero(np.isposinf(raw))),
        "image_psnr_cap_db": PSNR_CAP_DB,
        "per_camera": {
            cam: {
                "psnr_mean": _nan_stat(np.mean, capped[cam]),
                "psnr_min": _nan_stat(np.min, capped[cam]),
                "ssim_mean": _nan_stat(np.mean, ssim.get(cam, np.array([]))),
                "mad_mean": _nan_stat(np.mean, mad.get(cam, np.array([]))),
            }
            for cam in capped
        },
    }


def _object_summary(columns: dict[str, np.ndarray], objects: Sequence[str], units: str) -> dict[str, Any]:
    errors = _columns_of(columns, metric_table.object_position_metric(units))
    per_object = {n: _nan_stat(np.max, errors[n]) for n in objects if n in errors}
    angles = {n: _nan_stat(np.max, v) for n, v in _columns_of(columns, OBJECT_ANGLE).items()}
    known = [v for v in per_object.values() if v is not None]
    worst = max(known) if known else None
    known_angles = [v for v in angles.values() if v is not None]
    # Steps an image meter ran without seeing the object: the maxima above skip them, so say how many.
    gap_columns = _columns_of(columns, OBJECT_GAP)
    gaps = {n: int(np.nansum(gap_columns[n])) for n in objects if n in gap_columns}
    any_gap = [np.nan_to_num(gap_columns[n]) for n in gaps]
    return {
        "object_gaps": gaps,
        "object_gap_steps": int(np.max(any_gap, axis=0).sum()) if any_gap else None,
        "object_units": units,
        "object_position_error_max": worst,
        "object_position_error_mm_max": worst * 1000.0 if worst is not None and units == "m" else None,
        "per_object_position_error_max": per_object,
        "object_angle_error_deg_max": max(known_angles) if known_angles else None,
    }


def _outcome_summary(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    def flag(name: str) -> bool | None:
        peak = _nan_stat(np.max, columns[name]) if name in columns else None
        return None if peak is None else peak >= 1.0

    def peak(name: str) -> float | None:
        return _nan_stat(np.max, columns[name]) if name in columns else None

    return {
        "replayed_success": flag("success"),
        "recorded_success": flag("recorded_success"),
        "replayed_max_reward": peak("reward"),
        "recorded_max_reward": peak("recorded_reward"),
    }


def summarize(
    columns: dict[str, np.ndarray],
    *,
    state_names: Sequence[str],
    objects: Sequence[str],
    object_units: str | None = None,
) -> dict[str, Any]:
    """report.json's summary: JSON-ready scalars (NaN -> None, PSNR capped at PSNR_CAP_DB).

    `object_units` is "m" (MuJoCo) or "px" (PushT); None infers px when planar angles were measured.
    `object_position_error_mm_max` is only set for metric units.
    """
    if object_units is None:
        object_units = "px" if metric_table.named(columns, OBJECT_ANGLE) else "m"
    summary = _state_summary(columns, state_names)
    summary.update(_image_summary(columns))
    summary.update(_object_summary(columns, objects, object_units))
    summary.update(_outcome_summary(columns))
    return summary


def decide_verdict(
    divergences: dict[str, int | None],
    summary: dict[str, Any],
    *,
    length: int,
    tolerances: Tolerances,
    replayed_success: bool | None,
    recorded_success: bool | None,
    unstable_step: int | None,
) -> Verdict:
    """pass / warn / fail with one human sentence per finding (see the rules in README)."""
    cutoff = tolerances.warn_fraction * length
    details: dict[str, Onset] = getattr(divergences, "details", {})
    failures: list[str] = []
    warnings: list[str] = []
    if unstable_step is None and divergences.get("unstable") is not None:
        unstable_step = divergences["unstable"]
    if unstable_step is not None:
        failures.append(f"the simulation became unstable (physics blew up) at step {unstable_step}")
    for group, step in sorted(divergences.items(), key=lambda item: (item[1] is None, item[1] or 0, item[0])):
        if step is None or group == "unstable":
            continue
        onset = details.get(group)
        text = onset.describe() if onset else f"{group} diverges at step {step}"
        if step < cutoff:
            failures.append(text)
        else:
            warnings.append(f"{text} (after {tolerances.warn_fraction:.0%} of the {length} steps)")
    if recorded_success and replayed_success is False:
        failures.append("the replay does not reach the task's success; the recording does")
    if recorded_success is False and replayed_success:
        warnings.append("the replay reaches the task's success; the recording says it failed")
    steps = [s for s in divergences.values() if s is not None]
    if unstable_step is not None:
        steps.append(unstable_step)
    first = min(steps) if steps else None
    status = "fail" if failures else "warn" if warnings else "pass"
    return Verdict(status=status, first_divergence_step=first, reasons=tuple(failures + warnings))
