"""Batch summary documents built from synthetic episode entries (no simulation)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from replay_check.batch_report import (
    EpisodeEntry,
    build_summary,
    distribution,
    entry_from_report,
    worst_first,
    write_atomic,
    write_summary,
)


def entries() -> list[EpisodeEntry]:
    return [
        EpisodeEntry(0, "pass", length=100, metrics={"state_max_abs": 0.001, "image_psnr_mean": 40.0},
                     report="episode_000000/report.md", elapsed_s=1.5),
        EpisodeEntry(1, "fail", first_divergence_step=40, length=100, reasons=["left_arm 0.2 rad > 0.05 at 40"],
                     metrics={"state_max_abs": 0.2, "image_psnr_mean": 18.0}, report="episode_000001/report.md"),
        EpisodeEntry(2, "warn", first_divergence_step=90, length=100, reasons=["late <drift> & more"],
                     metrics={"state_max_abs": 0.06, "image_psnr_mean": None}, report="episode_000002/report.md"),
        EpisodeEntry(3, "error", message="EstimationError: cube not found", report="episode_000003/error.json"),
        EpisodeEntry(4, "fail", first_divergence_step=10, length=100, metrics={"state_max_abs": 0.5},
                     report="episode_000004/report.md"),
        EpisodeEntry(5, "skipped", message="not run (interrupted)"),
    ]


def summary() -> dict:
    return build_summary(entries(), dataset={"name": "demo", "repo_id": None, "root": "/d", "revision": "abc"},
                         settings={"profile": "aloha-transfer-cube", "mode": "images", "image_stride": 1,
                                   "hash": "0123456789abcdef"},
                         selection=range(6), run={"workers": 2, "interrupted": True}, tool_version="0.1.0")


def test_distribution_ignores_missing_values():
    d = distribution([1.0, None, 3.0, 2.0, 10.0])
    assert d == {"count": 4, "min": 1.0, "median": 2.5, "p90": pytest.approx(7.9), "max": 10.0}
    assert distribution([None])["count"] == 0 and distribution([])["median"] is None


def test_summary_counts_distributions_and_worst_first_order():
    s = summary()
    assert s["counts"] == {"pass": 1, "warn": 1, "fail": 2, "error": 1, "skipped": 1, "total": 6}
    assert [e["episode"] for e in s["episodes"]] == [3, 4, 1, 2, 5, 0]
    assert s["metrics"]["state_max_abs"]["max"] == 0.5 and s["metrics"]["state_max_abs"]["count"] == 4
    assert s["metrics"]["image_psnr_mean"]["count"] == 2
    assert s["metrics"]["first_divergence_step"] == distribution([40, 90, 10])
    json.dumps(s, allow_nan=False)  # strict JSON


def test_worst_first_breaks_ties_by_error_size():
    a = EpisodeEntry(0, "pass", metrics={"state_max_abs": 0.01})
    b = EpisodeEntry(1, "pass", metrics={"state_max_abs": 0.02})
    assert [e.episode for e in worst_first([a, b])] == [1, 0]


def test_entry_from_report_keeps_key_metrics_and_drops_non_finite():
    report = {"length": 50, "verdict": {"status": "warn", "first_divergence_step": 44, "reasons": ["late"]},
              "summary": {"state_rmse": 0.01, "image_psnr_mean": None, "replayed_success": True,
                          "object_position_error_mm_max": math.inf}}
    entry = entry_from_report(7, report, "episode_000007/report.md")
    assert (entry.status, entry.first_divergence_step, entry.length) == ("warn", 44, 50)
    assert entry.metrics == {"state_rmse": 0.01, "image_psnr_mean": None, "object_position_error_mm_max": None}


def test_junit_has_one_testcase_per_episode_with_the_right_outcome(tmp_path):
    paths = write_summary(summary(), tmp_path)
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    assert [suite.get(k) for k in ("tests", "failures", "errors", "skipped")] == ["6", "2", "1", "1"]
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == [f"episode_{i:06d}" for i in range(6)]
    assert cases["episode_000001"].find("failure").get("message") == "diverged at step 40"
    assert cases["episode_000003"].find("error").get("message") == "EstimationError: cube not found"
    assert cases["episode_000002"].find("system-out").text == "WARN: late <drift> & more"
    assert cases["episode_000000"].find("failure") is None and cases["episode_000000"].get("time") == "1.500"
    assert cases["episode_000005"].find("skipped") is not None


def test_html_is_self_contained_sortable_and_links_reports(tmp_path):
    paths = write_summary(summary(), tmp_path)
    page = paths["html"].read_text()
    assert 'class="sortable"' in page and "addEventListener('click'" in page
    assert 'href="episode_000001/report.md"' in page and 'href="episode_000003/error.json"' in page
    assert page.count("<svg") == 3  # divergence plot + one histogram per metric column
    assert "late &lt;drift&gt; &amp; more" in page
    assert "<script src" not in page and "<link" not in page
    assert page.index(">4</a>") < page.index(">1</a>") < page.index(">0</a>")  # worst first


def test_markdown_lists_episodes_worst_first_with_links(tmp_path):
    paths = write_summary(summary(), tmp_path)
    text = paths["md"].read_text()
    assert text.startswith("# demo: 6 episodes, 1 pass, 1 warn, 2 fail, 1 error, 1 skipped")
    assert "interrupted" in text
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert rows[0].startswith("| [3](episode_000003/error.json) | ERROR")
    assert "| [4](episode_000004/report.md) | FAIL | 10 |" in rows[1]


def test_write_atomic_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "summary.json"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]
