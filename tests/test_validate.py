"""Batch validation on the local pool: counts and exit codes, resume after deletion or a killed run, crashes,
worker reuse and replacement, no orphans after a SIGKILLed driver, Ctrl-C, bad input.

The datasets are recorded once per module with the scripted PushT pusher (physically consistent, ~1 s);
replays run in --mode state, so each batch costs about one interpreter start-up per worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from replay_check.errors import InputError
from replay_check.validate import FAULT_ENV, ValidateRequest, parse_episodes, validate_dataset
from tests.report_paths import report_folder
from tests.signals import interruptible

EPISODES, STEPS = 3, 30


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory) -> Path:
    from replay_check.record import record_dataset

    root = tmp_path_factory.mktemp("validate") / "pusht_small"
    record_dataset("pusht", EPISODES, root, seed=0, progress=False, steps=STEPS)
    return root


@pytest.fixture(scope="module")
def broken_root(clean_root, tmp_path_factory) -> Path:
    """The same dataset with episode 1's actions shifted by 60 px in x: its replay must fail."""
    root = tmp_path_factory.mktemp("validate") / "pusht_broken"
    shutil.copytree(clean_root, root)
    path = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    actions = np.array(table.column("action").to_pylist(), dtype=np.float32)
    rows = np.array(table.column("episode_index").to_pylist()) == 1
    actions[rows, 0] += 60.0
    column = pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), 2)
    table = table.set_column(table.schema.get_field_index("action"), table.schema.field("action"), column)
    pq.write_table(table, path)
    return root


def request(root: Path, report_dir: Path, **kw) -> ValidateRequest:
    return ValidateRequest(root=root, mode="state", report_dir=report_dir, plots=False, **kw)


def comparable(summary: dict) -> dict:
    """The summary without what legitimately changes between runs (timings, what was reused)."""
    summary = json.loads(json.dumps(summary))
    summary.pop("run")
    for entry in summary["episodes"]:
        entry.pop("elapsed_s")
        entry.pop("resumed")
    return summary


def started(events) -> list[int]:
    return sorted(e.episode for e in events if e.kind == "start")


def test_parse_episodes_forms_and_errors():
    available = list(range(10))
    assert parse_episodes("all", available) == available
    assert parse_episodes("2:5", available) == [2, 3, 4]
    assert parse_episodes(":3", available) == [0, 1, 2]
    assert parse_episodes("7:", available) == [7, 8, 9]
    assert parse_episodes("0:10:4", available) == [0, 4, 8]
    assert parse_episodes("9,3,3,7", available) == [3, 7, 9]
    with pytest.raises(InputError, match="not in the dataset; valid episode indices: 0..9"):
        parse_episodes("5:12", available)
    for bad in ("1-3", "a", "1:2:3:4", "3:1:0", ""):
        with pytest.raises(InputError, match="malformed|selects no episode"):
            parse_episodes(bad, available)


@pytest.mark.slow
def test_batch_counts_outputs_and_exit_code(broken_root, tmp_path):
    events = []
    batch = validate_dataset(request(broken_root, tmp_path, workers=2), on_event=events.append)
    counts = batch.counts
    assert (counts["pass"], counts["fail"], counts["error"], counts["total"]) == (2, 1, 0, 3)
    assert batch.exit_code() == 1
    first = batch.summary["episodes"][0]
    assert (first["episode"], first["status"]) == (1, "fail")  # worst first
    assert first["first_divergence_step"] is not None and first["report"] == "episode_000001/report.md"
    out = report_folder(tmp_path, broken_root)
    assert json.loads((out / "summary.json").read_text())["counts"] == counts
    assert (out / "episode_000001" / "report.md").exists()
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase") == 3 and junit.count("<failure") == 1
    assert "episode_000001/report.md" in (out / "summary.html").read_text()
    assert started(events) == [0, 1, 2]
    assert [e.done for e in events if e.kind == "done"] == [1, 2, 3]


@pytest.mark.slow
def test_resume_redoes_only_missing_episodes_and_force_redoes_all(clean_root, tmp_path):
    first = validate_dataset(request(clean_root, tmp_path, workers=2))
    assert first.counts["pass"] == 3 and first.exit_code() == 0
    shutil.rmtree(report_folder(tmp_path, clean_root) / "episode_000002")
    events = []
    again = validate_dataset(request(clean_root, tmp_path, workers=1), on_event=events.append)
    assert started(events) == [2]
    assert sorted(e.episode for e in events if e.kind == "skip") == [0, 1]
    assert again.summary["run"]["resumed"] == 2
    assert comparable(again.summary) == comparable(first.summary)
    events.clear()
    validate_dataset(request(clean_root, tmp_path, workers=2, force=True), on_event=events.append)
    assert started(events) == [0, 1, 2]
    events.clear()  # different settings (tolerances) are a different batch: nothing is reused
    validate_dataset(request(clean_root, tmp_path, workers=2, episodes="0", tolerance_overrides={"agent_px": 3.0}),
                     on_event=events.append)
    assert started(events) == [0]


@pytest.mark.slow
def test_crashes_and_timeouts_become_errors_and_are_retried(clean_root, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "0=segv,1=raise,2=hang")
    batch = validate_dataset(request(clean_root, tmp_path, workers=2, timeout=4.0))
    messages = {e["episode"]: e["message"] for e in batch.summary["episodes"]}
    assert batch.counts["error"] == 3 and batch.exit_code() == 3  # operational, not a FAIL
    assert "SIGSEGV" in messages[0]
    assert messages[1] == "RuntimeError: injected failure in episode 1"
    assert "timed out after 4 s" in messages[2]
    saved = json.loads((report_folder(tmp_path, clean_root) / "episode_000001" / "error.json").read_text())
    assert "Traceback" in saved["traceback"] and saved["status"] == "error"
    assert (report_folder(tmp_path, clean_root) / "junit.xml").read_text().count("<error") == 3
    monkeypatch.setenv(FAULT_ENV, "2=exit")
    events = []
    retry = validate_dataset(request(clean_root, tmp_path, workers=2), on_event=events.append)
    assert started(events) == [0, 1, 2]  # errors are never reused
    assert (retry.counts["pass"], retry.counts["error"]) == (2, 1)
    assert not (report_folder(tmp_path, clean_root) / "episode_000000" / "error.json").exists()
    assert "exited with code 7" in retry.summary["episodes"][0]["message"]


def test_workers_are_reused_and_replaced_after_a_crash(clean_root, tmp_path, monkeypatch):
    events = []
    monkeypatch.setenv(FAULT_ENV, "1=raise")  # an exception is an error, and the worker serves on
    batch = validate_dataset(request(clean_root, tmp_path, workers=1), on_event=events.append)
    workers = [e.worker for e in events if e.kind == "done"]
    assert batch.counts["error"] == 1 and len(set(workers)) == 1 and workers[0]
    events.clear()
    monkeypatch.setenv(FAULT_ENV, "1=kill")  # a SIGKILLed worker is replaced for the next episode
    batch = validate_dataset(request(clean_root, tmp_path, workers=1, force=True), on_event=events.append)
    done = {e.episode: e for e in events if e.kind == "done"}
    assert done[1].status == "error" and "SIGKILL" in done[1].message
    assert done[0].worker and done[2].worker and done[0].worker != done[2].worker
    assert (batch.counts["pass"], batch.counts["error"]) == (2, 1)


def test_a_worker_is_retired_after_max_jobs(clean_root, tmp_path):
    from replay_check.executors import Job
    from replay_check.executors.local import LocalPool
    from replay_check.pipeline import RunRequest

    pool = LocalPool(1, max_jobs=2)
    results = []
    try:
        for episode in range(EPISODES):
            pool.submit(Job(episode, RunRequest(root=clean_root, mode="state", plots=False, rerun=None)))
            deadline = time.monotonic() + 120
            while not (done := pool.wait(1.0)):
                assert time.monotonic() < deadline, "no result"
            results += done
    finally:
        pool.close()
    assert [r.status for r in results] == ["pass"] * EPISODES and all("report.json" in r.files for r in results)
    assert results[0].worker == results[1].worker != results[2].worker


def _start_cli(root: Path, report_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "replay_check", "validate", "--root", str(root), "--mode", "state",
            "--workers", "1", "--no-plots", "--report-dir", str(report_dir), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, preexec_fn=interruptible)


def test_sigkilled_driver_leaves_no_workers(clean_root, tmp_path):
    import psutil

    proc = _start_cli(clean_root, tmp_path, "--workers", "2", env={FAULT_ENV: "0=hang,1=hang"})
    deadline = time.monotonic() + 30
    while len(children := psutil.Process(proc.pid).children(recursive=True)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [p.cmdline() for p in alive]


def _wait_for_report(report_dir: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while not list(report_dir.glob("*/episode_*/report.json")):  # not the temporary folders
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no report appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_run_resumes(clean_root, tmp_path):
    proc = _start_cli(clean_root, tmp_path)
    _wait_for_report(tmp_path, proc)
    proc.kill()
    proc.communicate()
    done = sorted(p.parent.name for p in tmp_path.glob("*/episode_*/report.json"))
    assert 1 <= len(done) < EPISODES
    events = []
    batch = validate_dataset(request(clean_root, tmp_path, workers=2), on_event=events.append)
    assert sorted(f"episode_{e.episode:06d}" for e in events if e.kind == "skip") == done
    assert batch.counts["pass"] == EPISODES


def test_ctrl_c_writes_partial_summary_without_traceback(clean_root, tmp_path):
    # The last episode hangs, so the batch cannot finish before the signal lands (state mode is fast now).
    proc = _start_cli(clean_root, tmp_path, env={FAULT_ENV: f"{EPISODES - 1}=hang"})
    _wait_for_report(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "interrupted" in stderr
    summary = json.loads((report_folder(tmp_path, clean_root) / "summary.json").read_text())
    assert summary["run"]["interrupted"] is True
    assert summary["counts"]["skipped"] >= 1 and summary["counts"]["pass"] >= 1


def test_cli_rejects_bad_thresholds_and_episodes_with_exit_2(clean_root, tmp_path):
    from replay_check.cli import cli

    bad = tmp_path / "bad.toml"
    bad.write_text("[default]\narm_radians = 0.1\n")
    runner = CliRunner()
    base = ["validate", "--root", str(clean_root), "--mode", "state", "--report-dir", str(tmp_path / "r")]
    result = runner.invoke(cli, [*base, "--thresholds", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "arm_radians" in result.output
    result = runner.invoke(cli, [*base, "--episodes", "0:99"])
    assert result.exit_code == 2 and "valid episode indices: 0..2" in result.output
    result = runner.invoke(cli, [*base, "--ray-address", "127.0.0.1:6379"])
    assert result.exit_code == 2 and result.output.strip() == "Error: --ray-address needs --executor ray"
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_cli_exit_code_follows_verdicts(broken_root, tmp_path):
    from replay_check.cli import cli

    args = ["validate", "--root", str(broken_root), "--mode", "state", "--no-plots", "--workers", "2",
            "--report-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, "--episodes", "1"])
    assert result.exit_code == 1 and "episode 1: FAIL at step" in result.output
    result = CliRunner().invoke(cli, [*args, "--episodes", "0,2"])
    assert result.exit_code == 0, result.output
    assert (report_folder(tmp_path, broken_root) / "summary.html").exists()


def test_ray_executor_without_ray_is_bad_input(monkeypatch):
    from replay_check.executors import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(InputError, match=r'--executor ray needs Ray: pip install "replay-check\[ray\]"'):
        make_executor("ray", workers=None, timeout=None)


def test_a_report_from_another_tool_version_is_an_error(clean_root, tmp_path, monkeypatch):
    import replay_check.validate as validate_module

    monkeypatch.setattr(validate_module, "__version__", "0.0.0-driver")  # the worker still reports the real one
    batch = validate_dataset(request(clean_root, tmp_path, workers=1, episodes="0"))
    message = batch.summary["episodes"][0]["message"]
    assert batch.counts["error"] == 1 and "this driver runs 0.0.0-driver" in message
    assert not (report_folder(tmp_path, clean_root) / "episode_000000" / "report.json").exists()
