"""validate --executor ray on a real two-node Ray cluster bound to 127.0.0.1 (one cluster for the module).

Four recorded PushT episodes (episode 1's actions shifted, so it fails) in state mode: the Ray run's
summary and reports equal the local pool's; a worker killed mid-episode is an error after Ray's bounded
retry, one raising is an error at once, one past --timeout is cancelled, and the batch completes; an
interrupted Ray run (in process, and the CLI under SIGINT) cancels its outstanding tasks and a re-run
redoes only the episodes without a report. Node loss and the private instance: test_validate_ray_own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from replay_check.validate import FAULT_ENV, ValidateRequest, validate_dataset
from tests.ray_cluster import LOOPBACK_ENV, local_cluster, task_processes, wait_for_cpus
from tests.report_paths import report_folder
from tests.signals import interruptible
from tests.test_validate import comparable

pytestmark = pytest.mark.slow
EPISODES, STEPS = 4, 30


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node, one CPU each, everything on 127.0.0.1; the driver stays connected."""
    with local_cluster(1, 1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return record_four(tmp_path_factory.mktemp("ray") / "pusht_four")


def record_four(root: Path) -> Path:
    """EPISODES recorded PushT episodes of STEPS steps; episode 1's actions shifted by 60 px, so it fails."""
    from replay_check.record import record_dataset

    record_dataset("pusht", EPISODES, root, seed=0, progress=False, steps=STEPS)
    path = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    actions = np.array(table.column("action").to_pylist(), dtype=np.float32)
    actions[np.array(table.column("episode_index").to_pylist()) == 1, 0] += 60.0
    column = pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), 2)
    pq.write_table(table.set_column(table.schema.get_field_index("action"), table.schema.field("action"), column),
                   path)
    return root


def ray_request(root: Path, report_dir: Path, cluster, **kw) -> ValidateRequest:
    return ValidateRequest(root=root, mode="state", report_dir=report_dir, plots=False, executor="ray",
                           ray_address=cluster.address, **kw)


def outcome(report_dir: Path, root: Path, episode: int) -> dict:
    report = json.loads((report_folder(report_dir, root) / f"episode_{episode:06d}" / "report.json").read_text())
    return {key: report[key] for key in ("verdict", "summary", "divergence", "settings", "initial_state")}


def test_ray_reports_equal_local_ones(cluster, root, tmp_path):
    local = validate_dataset(ValidateRequest(root=root, mode="state", report_dir=tmp_path / "local", plots=False,
                                             workers=2))
    events = []
    remote = validate_dataset(ray_request(root, tmp_path / "ray", cluster), on_event=events.append)
    assert (remote.counts["pass"], remote.counts["fail"], remote.counts["error"]) == (3, 1, 0)
    assert comparable(remote.summary) == comparable(local.summary)
    assert remote.exit_code() == local.exit_code() == 1
    assert remote.summary["run"]["executor"] == "ray" and remote.summary["run"]["workers"] == 2
    for episode in range(EPISODES):
        assert outcome(tmp_path / "ray", root, episode) == outcome(tmp_path / "local", root, episode)
    junit = [(report_folder(tmp_path / d, root) / "junit.xml").read_text() for d in ("local", "ray")]
    assert junit[0].count("<failure") == junit[1].count("<failure") == 1
    assert len({e.worker for e in events if e.kind == "done"}) >= 2  # two one-CPU nodes ran tasks side by side


def test_ray_worker_killed_or_raising_mid_episode_is_an_error(cluster, root, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "2=kill,3=raise")
    batch = validate_dataset(ray_request(root, tmp_path, cluster))
    assert (batch.counts["pass"], batch.counts["fail"], batch.counts["error"]) == (1, 1, 2)
    entries = {e["episode"]: e for e in batch.summary["episodes"]}
    assert entries[2]["message"] == "Ray worker process died after 2 attempts"
    assert entries[3]["message"] == "RuntimeError: injected failure in episode 3"  # not retried: it is no crash
    saved = {i: json.loads((report_folder(tmp_path, root) / f"episode_{i:06d}" / "error.json").read_text())
             for i in (2, 3)}
    assert saved[2]["status"] == "error" and saved[2]["message"] == entries[2]["message"]
    assert saved[2]["worker"] is None  # Ray's own error: no worker answered
    assert "_misbehave" in saved[3]["traceback"] and saved[3]["worker"].startswith(f"{socket.gethostname()}:")


def test_ray_task_past_the_timeout_is_cancelled_and_an_error(cluster, root, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "0=hang")
    batch = validate_dataset(ray_request(root, tmp_path, cluster, episodes="0", timeout=2))
    assert (batch.counts["error"], batch.counts["total"]) == (1, 1) and batch.exit_code() == 3
    assert batch.summary["episodes"][0]["message"] == "timed out after 2 s (Ray task cancelled)"
    wait_for_cpus(2)  # its worker was killed


def test_interrupted_ray_run_cancels_and_resumes(cluster, root, tmp_path):
    def interrupt_after_first(event):
        if event.kind == "done":
            raise KeyboardInterrupt

    first = validate_dataset(ray_request(root, tmp_path, cluster), on_event=interrupt_after_first)
    assert first.interrupted and first.exit_code() == 130
    done = sorted(p.parent.name for p in report_folder(tmp_path, root).glob("episode_*/report.json"))
    assert len(done) == 1 and first.counts["skipped"] == EPISODES - 1
    wait_for_cpus(2)  # the cancelled task's worker is killed and its CPU returns
    events = []
    again = validate_dataset(ray_request(root, tmp_path, cluster), on_event=events.append)
    assert [f"episode_{e.episode:06d}" for e in events if e.kind == "skip"] == done
    assert len([e for e in events if e.kind == "start"]) == EPISODES - 1
    assert (again.counts["pass"], again.counts["fail"]) == (3, 1) and again.summary["run"]["resumed"] == 1


def test_cli_ctrl_c_on_ray_cancels_outstanding_tasks_and_a_rerun_resumes(cluster, root, tmp_path):
    def cli(env: dict) -> subprocess.Popen:
        args = [sys.executable, "-m", "replay_check", "validate", "--root", str(root), "--mode", "state",
                "--no-plots", "--report-dir", str(tmp_path), "--executor", "ray", "--ray-address", cluster.address]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **LOOPBACK_ENV, **env}, preexec_fn=interruptible)

    folder = report_folder(tmp_path, root)
    proc = cli({FAULT_ENV: f"{EPISODES - 1}=hang"})  # the last episode holds its CPU until cancelled
    nodes = [cluster.head_node, *cluster.worker_nodes]
    deadline = time.monotonic() + 90
    while len(list(folder.glob("episode_*/report.json"))) < EPISODES - 1 or not any(map(task_processes, nodes)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, list(folder.glob("episode_*/*"))
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # seen once in a full CI run: show where the driver waits, then fail
        proc.send_signal(signal.SIGUSR1)  # the CLI's faulthandler prints every thread's stack
        time.sleep(1)
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"validate did not exit within 120 s of Ctrl-C; its stacks:\n{stderr[-6000:]}")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["interrupted"] is True and summary["run"]["executor"] == "ray"
    assert {k: summary["counts"][k] for k in ("pass", "fail", "error", "skipped")} == {
        "pass": 2, "fail": 1, "error": 0, "skipped": 1}
    assert not (folder / f"episode_{EPISODES - 1:06d}").exists()
    wait_for_cpus(2)  # the hanging task was cancelled: its worker is killed and its CPU returns
    again = cli({})
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 1, stderr  # episode 1 fails
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["run"]["ran"], summary["run"]["resumed"], summary["run"]["interrupted"]) == (1, EPISODES - 1,
                                                                                                 False)
    assert (summary["counts"]["pass"], summary["counts"]["fail"], summary["counts"]["skipped"]) == (3, 1, 0)
