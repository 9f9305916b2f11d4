"""Every per-step metric column, declared once: name pattern, unit, direction, tolerance, where shown.

`metrics.step_metrics` writes the columns; divergence checks, summaries, report panels, the Rerun
error views and the CLI's summary lines read this table instead of parsing column names. A column
name is a declaration's `pattern` with `{name}` filled in (a joint, state group, object or camera).

Units come from declarations: a state group's from the profile's `[state_kinds]` (arm: rad,
gripper: normalized, agent: px), an object's from its family (`object_units` m: shown in mm, px).
A limit is the tolerance of the declaration's `tolerance` key, unless the tolerances give one for
that group or object (`Tolerances.groups`, e.g. `left_gripper = 0.2`, `object/peg = 20`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from replay_check.errors import ConfigError

# State group kind -> (tolerance key, unit of the column and of its tolerance).
STATE_KINDS = {"arm": ("arm_rad", "rad"), "gripper": ("gripper", "(normalized)"), "agent": ("agent_px", "px")}


@dataclass(frozen=True)
class Metric:
    """One kind of column. `scale` converts column values to `unit` (m -> mm); limits are in `unit`."""

    key: str
    pattern: str  # column name, `{name}` standing for the joint / group / object / camera
    unit: str = ""
    scale: float = 1.0
    higher_is_worse: bool = True
    tolerance: str | None = None  # Tolerances field with the default limit; None: not checked
    group: str | None = None  # divergence group pattern (None: the column is not checked)
    label: str = "|error|"
    panel: str | None = None  # report plot file stem: "state" | "objects" | "images"
    view: str | None = None  # Rerun error view title
    cap: float | None = None  # summaries and plots clip values above this (PSNR of identical frames)
    consecutive: int | None = None  # None: the tolerances' consecutive_steps
    fixed_limit: float | None = None  # a limit no tolerance changes (the blow-up flag)

    def column(self, name: str = "") -> str:
        return self.pattern.format(name=name)

    def group_of(self, name: str = "") -> str | None:
        return None if self.group is None else self.group.format(name=name)


PSNR_CAP_DB = 100.0

JOINT = Metric("joint", "state_err/{name}", label="|error|", view="joint |error|")
STATE_RMS = Metric("state_rms", "state_rms", label="RMS error", view="state error (max |err| per group, RMS)")
UNSTABLE = Metric("unstable", "unstable", group="unstable", label="unstable", consecutive=1, fixed_limit=0.5)
IMAGE_PSNR = Metric("image_psnr", "image/{name}/psnr", unit="dB", higher_is_worse=False, tolerance="image_psnr_db",
                    group="image/{name}", label="PSNR", panel="images", view="image PSNR (dB)", cap=PSNR_CAP_DB)
IMAGE_SSIM = Metric("image_ssim", "image/{name}/ssim", higher_is_worse=False, label="SSIM", panel="images",
                    view="image SSIM")
IMAGE_MAD = Metric("image_mad", "image/{name}/mad", label="mean |diff|", view="image mean |diff|")
OBJECT_ANGLE = Metric("object_angle", "object_angle_err_deg/{name}", unit="deg", tolerance="block_deg",
                      group="object_angle/{name}", label="angle error", panel="objects", view="object error")

# 1 where an image meter did not see the object on a measured step: summed into summary.object_gaps.
OBJECT_GAP = Metric("object_gap", "object_gap/{name}", unit="steps", label="not seen")


def state_group_metric(kind: str) -> Metric:
    """The per-group max |error| column of a state group of `kind` (see STATE_KINDS)."""
    if kind not in STATE_KINDS:
        raise ConfigError(f"state kind {kind!r}; expected one of {', '.join(STATE_KINDS)}")
    tolerance, unit = STATE_KINDS[kind]
    return Metric(f"group_{kind}", "group/{name}", unit=unit, tolerance=tolerance, group="{name}",
                  label="|error|", panel="state", view="state error (max |err| per group, RMS)")


def object_position_metric(units: str) -> Metric:
    """Recorded vs replayed object position: metres shown in mm (object_mm), or pixels (block_px)."""
    if units == "m":
        return Metric("object_position", "object_err/{name}", unit="mm", scale=1000.0, tolerance="object_mm",
                      group="object/{name}", label="position error", panel="objects", view="object error")
    return Metric("object_position", "object_err/{name}", unit="px", tolerance="block_px", group="object/{name}",
                  label="position error", panel="objects", view="object error")


@dataclass(frozen=True)
class Column:
    """A concrete column of one replay: its declaration and the name filled in."""

    metric: Metric
    name: str

    @property
    def column(self) -> str:
        return self.metric.column(self.name)

    @property
    def group(self) -> str | None:
        return self.metric.group_of(self.name)

    def limit(self, tolerances) -> float:
        """The limit in `metric.unit`: a per-group tolerance when given, else the declaration's key."""
        per_group = dict(tolerances.groups)
        if self.group in per_group:
            return float(per_group[self.group])
        if self.metric.fixed_limit is not None:
            return self.metric.fixed_limit
        return float(getattr(tolerances, self.metric.tolerance))


def columns_for(profile, *, object_units: str, planar: bool, state_names: Sequence[str] = (),
                cameras: Iterable[str] = ()) -> list[Column]:
    """Every column a replay of `profile` can produce, in display order (state, objects, images, unstable)."""
    kinds = profile.state_kinds
    missing = [g for g in profile.state_groups if g not in kinds]
    if missing:
        raise ConfigError(f"profile {profile.name!r}: state group {missing[0]!r} has no kind in [state_kinds] "
                          f"(one of {', '.join(STATE_KINDS)})")
    out = [Column(state_group_metric(kinds[g]), g) for g in profile.state_groups]
    out.append(Column(STATE_RMS, ""))
    out += [Column(JOINT, n) for n in state_names]
    position = object_position_metric(object_units)
    for name in profile.objects:
        out.append(Column(position, name))
        if planar:
            out.append(Column(OBJECT_ANGLE, name))
    for camera in cameras:
        out += [Column(IMAGE_PSNR, camera), Column(IMAGE_SSIM, camera), Column(IMAGE_MAD, camera)]
    out.append(Column(UNSTABLE, ""))
    return out


def named(columns: Iterable[str], metric: Metric) -> dict[str, str]:
    """{name: column} for the columns that are instances of `metric`'s pattern."""
    prefix, _, suffix = metric.pattern.partition("{name}")
    found = {}
    for column in columns:
        if column.startswith(prefix) and column.endswith(suffix) and len(column) > len(prefix) + len(suffix):
            found[column[len(prefix):len(column) - len(suffix)]] = column
    return found


# Summary keys of report.json shown by the CLI after a run and carried into batch summaries, in order.
SUMMARY_LINES = (
    ("state_rmse", "state RMSE"),
    ("state_max_abs", "state max |error|"),
    ("image_psnr_mean", "image PSNR mean (dB)"),
    ("image_ssim_mean", "image SSIM mean"),
    ("object_position_error_mm_max", "object error max (mm)"),
    ("object_gap_steps", "steps with an object not seen"),
    ("replayed_success", "replayed success"),
    ("recorded_success", "recorded success"),
)
BATCH_KEYS = (
    "state_rmse",
    "state_max_abs",
    "object_position_error_max",
    "object_position_error_mm_max",
    "object_angle_error_deg_max",
    "object_gap_steps",
    "image_psnr_mean",
    "image_psnr_min",
    "image_ssim_mean",
)
