"""One episode's report folder: report.json, report.md, PNG plots and steps.parquet, written atomically.

`<report-dir>/<dataset-name>-<hash>/episode_<NNNNNN>/` is built in a temporary sibling folder and swapped in
whole, so a crash never leaves a half-written report and a re-run replaces only that episode.

report.json (schema_version "1.0"; these keys are stable, more may be added):

    schema_version  "1.0"
    tool_version    replay-check version
    dataset         {repo_id, root, revision, codebase_version, fps, name, id, commit, fingerprint}
                    (id: "hub:<repo id>" or "local:<folder>"; fingerprint: sha256 of the episode's content)
    episode, length, task, profile
    versions        {mujoco, dm_control, gym_aloha, gym_pusht, pymunk, numpy, rerun_sdk, replay_check}
                    (packages that are not installed are left out)
    settings        {mode, image_stride, tolerances {...}, hash, stack}
    initial_state   {method: "environment_state" | "estimated", objects {<name>: {position, quaternion}},
                     residual, uncertainty {<name>: {position (1-sigma per axis), angle (rad)}}, details}
    summary         {state_rmse, state_max_abs, per_joint_max_abs {<name>: v}, per_group_max_abs,
                     image_psnr_mean, image_psnr_min, image_ssim_mean, image_frames_compared,
                     image_frames_identical, image_psnr_cap_db, object_units, object_position_error_max,
                     object_position_error_mm_max (metric units only), object_angle_error_deg_max,
                     object_gaps {<name>: steps an image meter did not see it}, object_gap_steps,
                     replayed_success, recorded_success, ...}
    verdict         {status: "pass" | "warn" | "fail", first_divergence_step, reasons [...]}
    divergence      {<group>: first step | null}
    divergence_details  {<group>: {step, value, limit, unit, reason}} for diverging groups
    timings         {timings_ms_per_step {<phase>: ms}, step_loop {wall_s, cpu_s, ...}}: the only fields
                    that change between identical runs
    extra           whatever else the engine added (artifacts, object_measurement, video_offsets, ...)

Two runs with the same input and settings write byte-identical steps.parquet and report.md, and
report.json files that differ only in `timings` (tests/test_determinism.py checks this).

The JSON is strict: NaN and +/-Infinity are written as null. The PSNR of identical frames is
infinite; summaries cap it at `image_psnr_cap_db` (100 dB) and count such frames in
`image_frames_identical`. steps.parquet keeps the raw per-step columns (NaN where not measured,
+inf PSNR for identical frames) plus an int `step` column.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from replay_check import gaps
from replay_check.divergence import Check, checks_for
from replay_check.errors import InputError
from replay_check.metric_table import columns_for
from replay_check.provenance import settings_hash, tool_version, versions  # noqa: F401  (re-exported)
from replay_check.steps import ReplayResult

SCHEMA_VERSION = "1.0"
def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy to Python, paths to str, NaN/Infinity to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _divergence_details(result: ReplayResult) -> dict[str, Any]:
    details = getattr(result.divergence, "details", {})
    return {
        group: {"step": o.step, "value": o.value, "limit": o.limit, "unit": o.unit, "reason": o.describe()}
        for group, o in details.items()
    }


# report.json keys that vary from run to run (wall and CPU time), kept under `timings` only.
TIMING_EXTRA = ("timings_ms_per_step", "step_loop", "diagnosis_seconds")


def _extra(result: ReplayResult) -> dict[str, Any]:
    """Diagnostics outside the stable core: how objects were observed, video offsets, artefacts."""
    extra: dict[str, Any] = {"object_measurement": result.object_measurement, "video_offsets": result.video_offsets}
    if result.artifacts is not None:
        extra["artifacts"] = result.artifacts
    for key in ("contacts", "diagnosis", "divergence_frames"):
        if getattr(result, key) is not None:
            extra[key] = getattr(result, key)
    return extra


def build_report(result: ReplayResult) -> dict[str, Any]:
    """The report.json document (strict-JSON-ready) for one finished replay."""
    meta = result.meta
    initial = result.initial_state
    settings = result.settings
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool_version": tool_version(),
        "dataset": {
            "repo_id": meta.repo_id,
            "root": str(meta.root),
            "revision": meta.revision or result.dataset_revision,
            "codebase_version": meta.codebase_version,
            "fps": meta.fps,
            "name": meta.name,
            "id": meta.identity,
            "commit": meta.commit,
            "fingerprint": result.fingerprint,
        },
        "episode": result.episode_index,
        "length": result.length,
        "task": result.task,
        "profile": result.profile.name,
        "versions": result.versions,
        "settings": {
            "mode": settings.mode,
            "image_stride": settings.image_stride,
            "ensemble": settings.ensemble,
            "resync": settings.resync,
            "strict": settings.strict,
            "tolerances": settings.tolerances.as_dict(),
            "hash": result.settings_hash or settings_hash(settings, result.profile.name),
            "stack": (result.stack or {}).get("name", "installed"),
        },
        "initial_state": {
            "method": initial.method,
            "objects": {name: pose.to_dict() for name, pose in initial.objects.items()},
            "residual": initial.residual,
            "uncertainty": {name: u.to_dict() for name, u in initial.uncertainty.items()},
            "details": initial.details,
        },
        "summary": result.summary,
        "verdict": {
            "status": result.verdict.status,
            "first_divergence_step": result.verdict.first_divergence_step,
            "reasons": list(result.verdict.reasons),
            "cause": result.verdict.cause,
            "evidence": list(result.verdict.evidence),
        },
        "divergence": dict(result.divergence),
        "divergence_details": _divergence_details(result),
        "timings": {"timings_ms_per_step": result.timings_ms_per_step, "step_loop": result.step_loop,
                    "diagnosis_seconds": result.diagnosis_seconds},
        "extra": _extra(result),
    }
    if result.stack is not None:
        report["stack"] = result.stack
    if result.stacks is not None:
        report["stacks"] = result.stacks
    return jsonable(report)


def _write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")


def _write_parquet(columns: dict[str, np.ndarray], length: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {"step": pa.array(np.arange(length, dtype=np.int32))}
    for name in sorted(columns):
        data[name] = pa.array(np.asarray(columns[name], dtype=np.float64))
    pq.write_table(pa.table(data), path)


def _series(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Measured steps, plus a NaN where each gap starts so the plotted line breaks instead of bridging it."""
    values = np.asarray(values, dtype=np.float64)
    steps = np.sort(np.concatenate([np.flatnonzero(~np.isnan(values)), gaps.gap_starts(values)]))
    return steps, values[steps]


def _mark(ax: Any, check: Check | None, first: int | None, own: int | None) -> None:
    """Limit line, the episode's first divergence (grey) and this group's own onset (red)."""
    if check is not None:
        limit = check.limit * check.scale
        ax.axhline(limit, color="tab:orange", linestyle="--", linewidth=1, label="limit")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, max(top, 1.25 * limit))  # keep the limit in view, even far above tiny errors
    if first is not None:
        ax.axvline(first, color="0.4", linestyle=":", linewidth=1, label=f"first divergence ({first})")
    if own is not None and own != first:
        ax.axvline(own, color="tab:red", linewidth=1, label=f"diverges ({own})")
    elif own is not None:
        ax.axvline(own, color="tab:red", linewidth=1)


# Fixed margins in inches instead of a layout engine: constrained layout measured every text in a
# first, hidden draw (two draws per figure, ~45% of the three ALOHA plots' time). These leave room for
# 7-character y tick labels (matplotlib switches to an offset or 1eN beyond 6 digits) and a y label.
_LEFT, _RIGHT, _BOTTOM, _TOP = 0.95, 0.15, 0.5, 0.6
_GAP = 0.4  # between stacked panels: the lower panel's title
_WIDTH, _PANEL_HEIGHT = 9.0, 2.1
HEADROOM = 1.3  # a non-negative panel's top, as a multiple of its largest value


def _figure(panels: list[tuple[str, str, np.ndarray, Check | None, int | None]], first: int | None,
            title: str) -> Any:
    """One stacked subplot per (title, ylabel, values, check, own onset), on fixed margins."""
    from matplotlib.figure import Figure

    n = len(panels)
    height = _PANEL_HEIGHT * n + 0.6
    axes_height = (height - _TOP - _BOTTOM - _GAP * (n - 1)) / n
    fig = Figure(figsize=(_WIDTH, height))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False, gridspec_kw={
        "left": _LEFT / _WIDTH, "right": 1 - _RIGHT / _WIDTH, "bottom": _BOTTOM / height,
        "top": 1 - _TOP / height, "hspace": _GAP / axes_height})[:, 0]
    for ax, (name, ylabel, values, check, own) in zip(axes, panels, strict=True):
        steps, vals = _series(values)
        ax.plot(steps, vals, linewidth=1, marker="." if len(steps) < 60 else None)
        finite = vals[np.isfinite(vals)]
        if finite.size and np.all(finite >= 0):
            # From zero, with headroom: a curve near its maximum (SSIM ~0.997) would otherwise run along the
            # panel's top edge, and the legend (upper left) would sit on it.
            ax.set_ylim(0, max(ax.get_ylim()[1], HEADROOM * float(finite.max())) or 1.0)
        _mark(ax, check, first, own)
        # A fixed title height (y given) skips matplotlib's search for what sits above the axes (~15% of
        # the draw); the only such text, the y offset ("1e-7"), goes to the right, away from the title.
        ax.set_title(name, fontsize=9, loc="left", y=1.0)
        ax.yaxis.set_offset_position("right")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("step")
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    return fig


def _plot_panels(panels: list[tuple[str, str, np.ndarray, Check | None, int | None]], first: int | None,
                 path: Path, title: str) -> None:
    """The panels' figure as a PNG."""
    _figure(panels, first, title).savefig(path, dpi=80)


def _write_plots(result: ReplayResult, out: Path) -> list[tuple[str, str]]:
    """PNG plots of state, object and image metrics; returns (caption, file name) pairs."""
    checks = {c.column: c for c in checks_for(result.profile, result.settings.tolerances, result.metrics)}
    first = result.verdict.first_divergence_step
    groups = {
        "joints.png": ("State error per group (max |error|)", _panels(result, checks, "state")),
        "objects.png": ("Object errors (recorded vs replayed)", _panels(result, checks, "objects")),
        "images.png": ("Image agreement (recorded vs replayed)", _panels(result, checks, "images")),
    }
    written = []
    for name, (title, panels) in groups.items():
        if panels:
            _plot_panels(panels, first, out / name, title)
            written.append((title, name))
    return written


def _ylabel(text: str, check: Check | None) -> str:
    if check is None or not check.unit:
        return text
    return f"{text} {check.unit}" if check.unit.startswith("(") else f"{text} ({check.unit})"  # "(normalized)"


def _panels(result: ReplayResult, checks: dict[str, Check], panel: str) -> list:
    """(title, y label, values, check, divergence step) per metric column shown on `panel`."""
    panels = []
    for col in _table_columns(result):
        metric = col.metric
        if metric.panel != panel or col.column not in result.metrics:
            continue
        check = checks.get(col.column)
        values = np.asarray(result.metrics[col.column], dtype=np.float64)
        if metric.cap is not None:
            values = np.minimum(values, metric.cap)
        title = col.group or f"{col.name} {metric.label}"
        if panel == "images":
            title = f"{col.name} {metric.label}" + (f" (capped at {metric.cap:g})" if metric.cap else "")
        ylabel = metric.unit or metric.label
        if panel == "state":
            ylabel = _ylabel("max |error|", check)
        elif panel == "objects":
            ylabel = f"error ({metric.unit})" if metric.unit else "error"
        panels.append((title, ylabel, values * metric.scale, check, result.divergence.get(col.group)
                       if col.group else None))
    return panels


def _table_columns(result: ReplayResult) -> list:
    from replay_check.families import family_of

    declared = family_of(result.profile)
    return columns_for(result.profile, object_units=declared.object_units, planar=declared.planar,
                       cameras=sorted(result.profile.cameras))


def format_cell(value: Any) -> str:
    """A table cell: 4 significant digits for floats, "-" for missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: Sequence[str], rows: list[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in rows]
    return lines


def _cause_lines(verdict: dict[str, Any]) -> list[str]:
    if not verdict.get("cause"):
        return []
    return ["", f"**Cause: `{verdict['cause']}`**", "", *[f"- {line}" for line in verdict.get("evidence", [])]]


def _frames_lines(frames: dict[str, Any] | None) -> list[str]:
    """Recorded | replayed | diff at the compared step nearest the first divergence."""
    if not frames:
        return []
    lines = ["", f"## Frames at the first divergence (step {frames['step']}; diff x{frames['diff_gain']})", ""]
    for camera, names in frames["images"].items():
        lines += [f"{camera}:", "", "| recorded | replayed | diff |", "|---|---|---|",
                  f"| ![recorded]({names['recorded']}) | ![replayed]({names['replayed']}) | ![diff]({names['diff']}) |",
                  ""]
    return lines


def _diagnosis_lines(extra: dict[str, Any]) -> list[str]:
    """Re-synced replay, ensemble and contact timeline, when they ran."""
    lines: list[str] = []
    diagnosis = extra.get("diagnosis") or {}
    resync = diagnosis.get("resync")
    if resync:
        lines += ["", f"## Re-synced replay (robot reset every {resync['every']} step(s))", "",
                  *_table(["group", "one-step max", "p95", "limit", "first step over"],
                          [[g, resync["max"].get(g), resync["p95"].get(g), resync["limits"].get(g),
                            resync["first_exceeding"].get(g)] for g in resync["limits"]])]
    ensemble = diagnosis.get("ensemble")
    if ensemble:
        lines += ["", "## Sensitivity ensemble", "", f"- {ensemble['reproduction']}",
                  f"- {ensemble['size']} copies on {ensemble['processes']} process(es) (cost: report.json "
                  "timings.diagnosis_seconds)", "",
                  *_table(["series", "largest spread", "at step"],
                          [[k, v["max"], v["step"]] for k, v in ensemble["spread"].items()])]
    contacts = extra.get("contacts")
    if contacts:
        lines += ["", "## Contacts", "", *_table(["bodies", "first step", "last step", "steps"],
                                                  [[" - ".join(r["bodies"]), r["first"], r["last"], r["steps"]]
                                                   for r in contacts])]
    return lines


def _steps_near_divergence(result: ReplayResult, around: int = 3) -> list[str]:
    """The per-step table around the first divergence, for the watched columns."""
    first = result.verdict.first_divergence_step
    if first is None:
        return []
    k = result.settings.tolerances.consecutive_steps
    checked = {col.column for col in _table_columns(result) if col.metric.group and col.metric.key != "unstable"}
    names = [c for c in sorted(result.metrics) if c in checked]
    steps = _steps_to_show(result, first, k, around)
    rows = [[t, *(_finite_or_none(result.metrics[n][t]) for n in names)] for t in steps]
    return ["", f"## Steps around the first divergence (step {first})", "", *_table(["step", *names], rows)]


def _steps_to_show(result: ReplayResult, first: int, k: int, around: int) -> list[int]:
    """The diverging run and `around` steps either side, counted in the steps its metric was measured on."""
    checks = checks_for(result.profile, result.settings.tolerances, result.metrics)
    group = next((g for g, step in result.divergence.items() if step == first), None)
    column = next((c.column for c in checks if c.group == group), None)
    if column is None:
        measured = np.arange(result.length)
    else:
        measured = np.flatnonzero(~np.isnan(np.asarray(result.metrics[column], dtype=np.float64)))
    pos = int(np.searchsorted(measured, first))
    return [int(t) for t in measured[max(0, pos - around):pos + k + around]]


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else (None if math.isnan(value) else value)


def _markdown(report: dict[str, Any], result: ReplayResult, plots: list[tuple[str, str]]) -> str:
    verdict = report["verdict"]
    dataset = report["dataset"]
    summary = report["summary"]
    lines = [
        f"# {dataset['name']} episode {report['episode']}: {verdict['status'].upper()}",
        "",
        f"- profile `{report['profile']}`, {report['length']} steps at {dataset['fps']:g} fps, "
        f"mode `{report['settings']['mode']}`, image stride {report['settings']['image_stride']}, "
        f"settings hash `{report['settings']['hash']}`",
        f"- initial state: {report['initial_state']['method']}"
        + (f" (residual {format_cell(report['initial_state']['residual'])})"
           if report["initial_state"]["residual"] is not None else ""),
        f"- first divergence: {format_cell(verdict['first_divergence_step'])}",
        "",
        "## Verdict",
        "",
        *([f"- {reason}" for reason in verdict["reasons"]] or ["- no divergence beyond tolerance"]),
        *_cause_lines(verdict),
        *_frames_lines(report["extra"].get("divergence_frames")),
        "",
        "## Divergence by group",
        "",
        *_table(["group", "first step", "value", "limit"], [
            [g, s, *(report["divergence_details"].get(g, {}).get(k) for k in ("value", "limit"))]
            for g, s in report["divergence"].items()]),
        "",
        "## Summary",
        "",
        *_table(["metric", "value"], [[k, v] for k, v in summary.items() if not isinstance(v, dict)]),
        "",
        "## Largest error per joint",
        "",
        *_table(["joint", "max |error|"], list(summary.get("per_joint_max_abs", {}).items())),
    ]
    for caption, name in plots:
        lines += ["", f"## {caption}", "", f"![{caption}]({name})"]
    lines += _steps_near_divergence(result)
    lines += _diagnosis_lines(report["extra"])
    lines += ["", "## Versions", "", *_table(["package", "version"], list(report["versions"].items())),
              "", "Per-step metrics: `steps.parquet`.", ""]
    return "\n".join(lines)


def _write_folder(result: ReplayResult, out: Path, plots: bool) -> None:
    report = build_report(result)
    _write_json(report, out / "report.json")
    _write_parquet(result.metrics, result.length, out / "steps.parquet")
    written = _write_plots(result, out) if plots else []
    (out / "report.md").write_text(_markdown(report, result, written))


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace out_dir by tmp; the previous folder is moved aside first and restored if the swap fails."""
    aside = None
    if out_dir.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.rmdir(aside)
        os.replace(out_dir, aside)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        if aside is not None:
            os.replace(aside, out_dir)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _build_atomically(out_dir: Path, fill: Callable[[Path], None]) -> Path:
    """Let fill() write into a temporary sibling of out_dir, then swap it in whole."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a report folder is an ordinary shared folder
        fill(tmp)
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def write_episode_report(result: ReplayResult, out_dir: Path, *, plots: bool = True,
                         files: dict[str, Path] | None = None) -> Path:
    """Write report.json, report.md, plots and steps.parquet into out_dir, atomically; returns out_dir.

    `files` ({name: finished temporary file}) are moved into the new folder before it replaces the old
    one, so a recording and the report pointing at it appear together.
    """
    def fill(tmp: Path) -> None:
        _write_folder(result, tmp, plots)
        for name, path in (files or {}).items():
            os.replace(path, tmp / name)

    return _build_atomically(out_dir, fill)


def install_report_files(files: Mapping[str, bytes], out_dir: Path) -> Path:
    """Write a report folder that a worker built elsewhere ({relative path: bytes}), atomically like above."""
    def fill(tmp: Path) -> None:
        for name, data in files.items():
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise ValueError(f"report file name {name!r} is not a plain relative path")
            target = tmp.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    if "report.json" not in files:
        raise ValueError("the worker's report folder has no report.json")
    return _build_atomically(out_dir, fill)


def read_report(path: str | Path) -> dict[str, Any]:
    """A report.json (given as the file or its episode folder) whose schema major version we understand."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no report at {path}; expected a report.json or its episode folder") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"report {path} is not readable JSON: {exc}") from None
    version = str(report.get("schema_version", "")) if isinstance(report, dict) else ""
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise InputError(f"report {path} has schema_version {version or 'none'!r}; expected {SCHEMA_VERSION}")
    return report
