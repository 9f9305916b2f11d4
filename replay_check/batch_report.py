"""A batch's aggregate output: summary.json, summary.md, a self-contained summary.html and junit.xml.

summary.json (schema_version "1.0"):

    schema_version, tool_version
    dataset     {name, repo_id, root, revision}
    settings    {profile, mode, image_stride, hash}
    selection   [episode indices asked for]
    counts      {pass, warn, fail, error, skipped, total}  (skipped: selected but not finished, e.g. Ctrl-C)
    metrics     {<key>: {count, min, median, p90, max}} over the episodes that have the value
    episodes    [{episode, status, first_divergence_step, length, reasons, message, metrics {...},
                  report (relative path of report.md or error.json), resumed, elapsed_s}], worst first
    run         {executor, workers, ran, resumed, interrupted, wall_s, finished_at}  (differs between re-runs)

Every file is written to a temporary sibling and moved into place with os.replace.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from replay_check.metric_table import BATCH_KEYS
from replay_check.report import format_cell

SCHEMA_VERSION = "1.0"
STATUSES = ("pass", "warn", "fail", "error", "skipped")
# Report-summary keys carried into the batch summary (when an episode's report has them).
METRIC_KEYS = BATCH_KEYS
_SEVERITY = {"error": 0, "fail": 1, "warn": 2, "skipped": 3, "pass": 4}


@dataclass
class EpisodeEntry:
    """One episode's line in the summary: from its report.json, its error.json, or nothing yet."""

    episode: int
    status: str
    first_divergence_step: int | None = None
    length: int | None = None
    reasons: list[str] = field(default_factory=list)
    message: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    report: str | None = None
    resumed: bool = False
    elapsed_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode,
            "status": self.status,
            "first_divergence_step": self.first_divergence_step,
            "length": self.length,
            "reasons": list(self.reasons),
            "message": self.message,
            "metrics": dict(self.metrics),
            "report": self.report,
            "resumed": self.resumed,
            "elapsed_s": self.elapsed_s,
        }


def entry_from_report(episode: int, report: dict[str, Any], report_rel: str, **kw: Any) -> EpisodeEntry:
    """The summary line of a finished episode, from its report.json document."""
    verdict = report.get("verdict", {})
    summary = report.get("summary", {})
    return EpisodeEntry(
        episode=episode,
        status=verdict.get("status", "error"),
        first_divergence_step=verdict.get("first_divergence_step"),
        length=report.get("length"),
        reasons=list(verdict.get("reasons", [])),
        metrics={k: _number(summary.get(k)) for k in METRIC_KEYS if k in summary},
        report=report_rel,
        **kw,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def worst_first(entries: Iterable[EpisodeEntry]) -> list[EpisodeEntry]:
    """Errors, then failures (earliest divergence first), warnings, not-run episodes, passes."""

    def key(e: EpisodeEntry) -> tuple:
        step = e.first_divergence_step if e.first_divergence_step is not None else math.inf
        error = e.metrics.get("state_max_abs") or 0.0
        return (_SEVERITY.get(e.status, 0), step, -error, e.episode)

    return sorted(entries, key=key)


def counts(entries: Sequence[EpisodeEntry]) -> dict[str, int]:
    found = {status: 0 for status in STATUSES}
    for entry in entries:
        found[entry.status] = found.get(entry.status, 0) + 1
    found["total"] = len(entries)
    return found


def distribution(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """count, min, median, p90 and max of the values that are present."""
    data = np.array([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return {"count": 0, "min": None, "median": None, "p90": None, "max": None}
    return {
        "count": int(data.size),
        "min": float(data.min()),
        "median": float(np.median(data)),
        "p90": float(np.percentile(data, 90)),
        "max": float(data.max()),
    }


def metric_distributions(entries: Sequence[EpisodeEntry]) -> dict[str, dict]:
    keys = [k for k in METRIC_KEYS if any(e.metrics.get(k) is not None for e in entries)]
    result = {k: distribution([e.metrics.get(k) for e in entries]) for k in keys}
    steps = [e.first_divergence_step for e in entries if e.first_divergence_step is not None]
    result["first_divergence_step"] = distribution(steps)
    return result


def build_summary(entries: Sequence[EpisodeEntry], *, dataset: dict[str, Any], settings: dict[str, Any],
                  selection: Sequence[int], run: dict[str, Any], tool_version: str) -> dict[str, Any]:
    """The summary.json document."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": tool_version,
        "dataset": dataset,
        "settings": settings,
        "selection": list(selection),
        "counts": counts(entries),
        "metrics": metric_distributions(entries),
        "episodes": [e.to_dict() for e in worst_first(entries)],
        "run": run,
    }


# ---------------------------------------------------------------- writing


def write_atomic(path: Path, text: str) -> None:
    """Write text to a temporary sibling, then move it over path (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_summary(summary: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write summary.json, summary.md, summary.html and junit.xml into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    paths = {
        "json": out_dir / "summary.json",
        "md": out_dir / "summary.md",
        "html": out_dir / "summary.html",
        "junit": out_dir / "junit.xml",
    }
    write_atomic(paths["json"], json.dumps(summary, indent=2, allow_nan=False) + "\n")
    write_atomic(paths["md"], markdown(summary))
    write_atomic(paths["html"], html_page(summary))
    write_atomic(paths["junit"], junit_xml(summary))
    return paths


def _title(summary: dict[str, Any]) -> str:
    c = summary["counts"]
    return (f"{summary['dataset']['name']}: {c['total']} episodes, {c['pass']} pass, {c['warn']} warn, "
            f"{c['fail']} fail, {c['error']} error, {c['skipped']} skipped")


def _episode_columns(summary: dict[str, Any]) -> list[str]:
    present = {k for e in summary["episodes"] for k, v in e["metrics"].items() if v is not None}
    if "object_position_error_mm_max" in present:
        present.discard("object_position_error_max")  # the same error in the object's own units
    return [k for k in METRIC_KEYS if k in present]


def _note(entry: dict[str, Any]) -> str:
    if entry["message"]:
        return entry["message"]
    return "; ".join(entry["reasons"])


def markdown(summary: dict[str, Any]) -> str:
    """summary.md: counts, metric distributions and the per-episode table, worst first."""
    s = summary["settings"]
    lines = [
        f"# {_title(summary)}",
        "",
        f"- profile `{s.get('profile')}`, mode `{s.get('mode')}`, image stride {s.get('image_stride')}, "
        f"settings hash `{s.get('hash')}`, revision `{summary['dataset'].get('revision')}`",
        f"- tool version {summary['tool_version']}"
        + (" — interrupted: not every episode ran" if summary["run"].get("interrupted") else ""),
        "",
        "## Metric distributions",
        "",
        "| metric | count | min | median | p90 | max |",
        "|---|---|---|---|---|---|",
    ]
    for key, d in summary["metrics"].items():
        stats = " | ".join(format_cell(d[k]) for k in ("min", "median", "p90", "max"))
        lines.append(f"| {key} | {d['count']} | {stats} |")
    columns = _episode_columns(summary)
    lines += ["", "## Episodes (worst first)", "",
              "| episode | status | first divergence | length | " + " | ".join(columns) + " | note |",
              "|---|---|---|---|" + "---|" * len(columns) + "---|"]
    for e in summary["episodes"]:
        name = f"[{e['episode']}]({e['report']})" if e["report"] else str(e["episode"])
        cells = [name, e["status"].upper(), format_cell(e["first_divergence_step"]), format_cell(e["length"]),
                 *(format_cell(e["metrics"].get(k)) for k in columns), _note(e).replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def junit_xml(summary: dict[str, Any]) -> str:
    """One testcase per episode: fail -> <failure>, error -> <error>, warn -> pass with system-out."""
    name = summary["dataset"]["name"]
    c = summary["counts"]
    suite = ET.Element("testsuite", name=f"replay-check {name}", tests=str(c["total"]), failures=str(c["fail"]),
                       errors=str(c["error"]), skipped=str(c["skipped"]))
    for e in sorted(summary["episodes"], key=lambda e: e["episode"]):
        case = ET.SubElement(suite, "testcase", classname=f"replay_check.{name}", name=f"episode_{e['episode']:06d}",
                             time=f"{e['elapsed_s'] or 0.0:.3f}")
        note = _note(e)
        if e["status"] == "fail":
            first = e["first_divergence_step"]
            message = "diverged" + ("" if first is None else f" at step {first}")
            ET.SubElement(case, "failure", message=message, type="divergence").text = note
        elif e["status"] == "error":
            ET.SubElement(case, "error", message=e["message"] or "error", type="error").text = e["message"]
        elif e["status"] == "skipped":
            ET.SubElement(case, "skipped", message="not run (batch interrupted)")
        elif e["status"] == "warn":
            ET.SubElement(case, "system-out").text = f"WARN: {note}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#eee;cursor:pointer;user-select:none}td.l,th.l{text-align:left}
tr.pass td.s{background:#d9f2d9}tr.warn td.s{background:#fff3c4}tr.fail td.s{background:#f8d0d0}
tr.error td.s{background:#e0b0e0}tr.skipped td.s{background:#e8e8e8}
.figs{display:flex;flex-wrap:wrap;gap:14px}.figs figure{margin:0}figcaption{font-size:12px;color:#555}
"""

_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = x === '' ? -Infinity : parseFloat(x), ny = y === '' ? -Infinity : parseFloat(y);
      var r = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
      return asc ? r : -r;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _sort_value(value: Any) -> str:
    return "" if value is None else _esc(value)


def html_page(summary: dict[str, Any]) -> str:
    """summary.html: one file with inline CSS, JS and SVG (no network, no external files)."""
    title = _title(summary)
    columns = _episode_columns(summary)
    head = ["episode", "status", "first divergence", "length", *columns, "note"]
    rows = []
    for e in summary["episodes"]:
        link = f'<a href="{_esc(e["report"])}">{e["episode"]}</a>' if e["report"] else str(e["episode"])
        cells = [
            f'<td data-v="{e["episode"]}">{link}</td>',
            f'<td class="s l" data-v="{_SEVERITY.get(e["status"], 0)}">{e["status"].upper()}</td>',
            f'<td data-v="{_sort_value(e["first_divergence_step"])}">{format_cell(e["first_divergence_step"])}</td>',
            f'<td data-v="{_sort_value(e["length"])}">{format_cell(e["length"])}</td>',
            *(f'<td data-v="{_sort_value(v)}">{format_cell(v)}</td>' for v in (e["metrics"].get(k) for k in columns)),
            f'<td class="l" data-v="{_esc(_note(e))}">{_esc(_note(e))}</td>',
        ]
        rows.append(f'<tr class="{_esc(e["status"])}">' + "".join(cells) + "</tr>")
    figures = [("First divergence step per episode (bar: episode length)", divergence_svg(summary["episodes"]))]
    for key in columns:
        figures.append((f"{key} over episodes", histogram_svg([e["metrics"].get(key) for e in summary["episodes"]])))
    dist_rows = "".join(
        f"<tr><td class=l>{_esc(k)}</td><td>{d['count']}</td>"
        + "".join(f"<td>{format_cell(d[q])}</td>" for q in ("min", "median", "p90", "max")) + "</tr>"
        for k, d in summary["metrics"].items()
    )
    s = summary["settings"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_esc(title)}</h1>
<p>profile <code>{_esc(s.get('profile'))}</code>, mode <code>{_esc(s.get('mode'))}</code>,
image stride {_esc(s.get('image_stride'))}, settings hash <code>{_esc(s.get('hash'))}</code>,
revision <code>{_esc(summary['dataset'].get('revision'))}</code>, replay-check {_esc(summary['tool_version'])}
{'<b>(interrupted: not every episode ran)</b>' if summary['run'].get('interrupted') else ''}</p>
<div class="figs">{''.join(f'<figure>{svg}<figcaption>{_esc(cap)}</figcaption></figure>' for cap, svg in figures)}</div>
<h2>Episodes (worst first; click a header to sort)</h2>
<table class="sortable"><thead><tr>{''.join(f'<th class="l">{_esc(h)}</th>' for h in head)}</tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<h2>Metric distributions</h2>
<table><thead><tr><th class=l>metric</th><th>count</th><th>min</th><th>median</th><th>p90</th><th>max</th></tr></thead>
<tbody>{dist_rows}</tbody></table>
<script>{_JS}</script>
</body></html>
"""


_W, _H, _PAD = 420, 200, 30


def divergence_svg(episodes: Sequence[dict[str, Any]]) -> str:
    """Episode length as a grey bar, the first divergence step as a red mark on it."""
    ordered = sorted(episodes, key=lambda e: e["episode"])
    top = max([e["length"] or 0 for e in ordered] + [1])
    n = max(len(ordered), 1)
    width = (_W - 2 * _PAD) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}">',
             _axes(f"0..{top} steps")]
    for i, e in enumerate(ordered):
        x = _PAD + i * width
        h = (_H - 2 * _PAD) * (e["length"] or 0) / top
        parts.append(f'<rect x="{x + 0.1 * width:.1f}" y="{_H - _PAD - h:.1f}" width="{0.8 * width:.1f}" '
                     f'height="{h:.1f}" fill="#ccc"><title>episode {e["episode"]}: {e["status"]}</title></rect>')
        if e["first_divergence_step"] is not None:
            y = _H - _PAD - (_H - 2 * _PAD) * e["first_divergence_step"] / top
            parts.append(f'<line x1="{x + 0.1 * width:.1f}" x2="{x + 0.9 * width:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="#c00" stroke-width="3"><title>episode {e["episode"]}: first divergence '
                         f'{e["first_divergence_step"]}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(values: Sequence[float | None], bins: int = 12) -> str:
    """A histogram of the values present (an empty frame when there are none)."""
    data = np.array([v for v in values if v is not None], dtype=np.float64)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}">']
    if data.size == 0:
        parts += [_axes("no values"), "</svg>"]
        return "".join(parts)
    low, high = float(data.min()), float(data.max())
    if high <= low:
        high = low + (abs(low) or 1.0) * 1e-6
    heights, edges = np.histogram(data, bins=bins, range=(low, high))
    parts.append(_axes(f"{low:.3g} .. {high:.3g}"))
    width = (_W - 2 * _PAD) / bins
    for i, count in enumerate(heights):
        h = (_H - 2 * _PAD) * count / max(int(heights.max()), 1)
        parts.append(f'<rect x="{_PAD + i * width + 1:.1f}" y="{_H - _PAD - h:.1f}" width="{width - 2:.1f}" '
                     f'height="{h:.1f}" fill="#4a7ab5"><title>{edges[i]:.3g}..{edges[i + 1]:.3g}: {count}'
                     f"</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def _axes(label: str) -> str:
    return (f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#333"/>'
            f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#333"/>'
            f'<text x="{_W / 2}" y="{_H - 8}" font-size="11" text-anchor="middle">{_esc(label)}</text>')
