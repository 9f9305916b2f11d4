"""validate --executor ray on Ray instances of its own: nodes lost mid-episode, and the private instance.

Node loss: the head has no CPUs, so every task runs on the one worker node present when it starts, and
the test decides where each attempt runs by adding and killing nodes (raylet and all, not gracefully).
Ray's bounded retry: an episode whose node is lost on both attempts is `error`; one whose first node is
lost while a second node is free gets its real verdict from the retry.
Private instance: `validate --executor ray` with no address starts Ray itself, on 127.0.0.1 only, and
leaves no process behind. An address where nothing answers is one line and exit 3 at once (ray.init alone
retries it for over ten minutes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from click.testing import CliRunner

from replay_check.cli import cli
from replay_check.executors.ray import LOOPBACK_ENV
from replay_check.validate import FAULT_ENV, ValidateRequest, validate_dataset
from tests.cli_checks import error_line
from tests.ray_cluster import FAST_NODE_DEATH, local_cluster, wait_for_task
from tests.report_paths import report_folder
from tests.test_validate_ray import EPISODES, record_four

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return record_four(tmp_path_factory.mktemp("ray_own") / "pusht_four")


def gone(processes: list, timeout: float = 20.0) -> bool:
    """True once every process has exited (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.2)
    return False


def test_lost_nodes_retry_once_then_error_and_the_batch_completes(root, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "0=hang")  # episode 0 never finishes by itself: only node loss ends it
    with local_cluster(0, 1, system_config=FAST_NODE_DEATH) as cluster:
        nodes = list(cluster.worker_nodes)
        killed, stopped = [], []

        def lose_nodes(event):
            if event.kind == "start" and event.episode == 0:
                for _ in range(2):  # the first attempt and Ray's one retry, each on a node then killed
                    killed.append(wait_for_task(nodes[-1]))
                    cluster.remove_node(nodes[-1], allow_graceful=False)
                    nodes.append(cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1"))
            if event.kind == "start" and event.episode == 1:  # freeze the task, lose its node, a free node retries
                task = wait_for_task(nodes[-1])
                task.send_signal(signal.SIGSTOP)
                stopped.append(task)
                spare = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
                cluster.remove_node(nodes[-1], allow_graceful=False)
                task.kill()  # a stopped worker cannot notice its raylet is gone
                nodes.append(spare)

        events = []
        batch = validate_dataset(
            ValidateRequest(root=root, mode="state", report_dir=tmp_path / "reports", plots=False, executor="ray",
                            ray_address=cluster.address),
            on_event=lambda e: (events.append(e), lose_nodes(e)))
        assert len(killed) == 2 and len(stopped) == 1
    assert batch.summary["run"]["workers"] == 1
    assert (batch.counts["pass"], batch.counts["fail"], batch.counts["error"], batch.counts["total"]) == (2, 1, 1,
                                                                                                         EPISODES)
    assert batch.exit_code() == 1
    entries = {e["episode"]: e for e in batch.summary["episodes"]}
    assert entries[0]["status"] == "error"
    assert entries[0]["message"] == "Ray node lost after 2 attempts: NodeDiedError"
    folder = report_folder(tmp_path / "reports", root)
    assert json.loads((folder / "episode_000000" / "error.json").read_text())["message"] == entries[0]["message"]
    # episode 1 (shifted actions) gets its real verdict from the retry, on another worker than the frozen one
    assert entries[1]["status"] == "fail" and not (folder / "episode_000001" / "error.json").exists()
    assert json.loads((folder / "episode_000001" / "report.json").read_text())["verdict"]["status"] == "fail"
    done = {e.episode: e.worker for e in events if e.kind == "done"}
    assert done[1] and not done[1].endswith(f":{stopped[0].pid}")
    assert (folder / "summary.json").exists() and (folder / "junit.xml").exists()
    assert gone(killed + stopped), [p for p in killed + stopped if p.is_running()]


def loopback(ip: str) -> bool:
    return ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def test_private_instance_listens_on_loopback_only_and_stops(root, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", LOOPBACK_ENV)}
    args = [sys.executable, "-m", "replay_check", "validate", "--root", str(root), "--mode", "state", "--no-plots",
            "-q", "--report-dir", str(tmp_path / "reports"), "--executor", "ray"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    driver, started, listening = psutil.Process(proc.pid), {}, set()
    while proc.poll() is None:  # the instance's processes (GCS, raylet, workers) are the driver's descendants
        try:
            processes = [driver, *driver.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for process in processes:
            try:
                started.setdefault(process.pid, process)
                listening |= {(c.laddr.ip, process.name()) for c in process.net_connections(kind="inet")
                              if c.status == psutil.CONN_LISTEN}
            except psutil.Error:
                pass
        time.sleep(0.1)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # episode 1 fails
    summary = json.loads((report_folder(tmp_path / "reports", root) / "summary.json").read_text())
    assert summary["run"]["executor"] == "ray" and (summary["counts"]["pass"], summary["counts"]["fail"]) == (3, 1)
    assert any(name == "gcs_server" for _, name in listening), listening
    assert all(loopback(ip) for ip, _ in listening), listening
    assert gone([p for pid, p in started.items() if pid != proc.pid])


@pytest.mark.timeout(120)  # without the check, ray.init keeps retrying for more than ten minutes
def test_an_address_where_no_cluster_answers_is_one_line_and_exit_3(root, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(cli, ["validate", "--root", str(root), "--mode", "state", "--executor", "ray",
                                      "--ray-address", f"127.0.0.1:{port}", "--report-dir", str(tmp_path)])
    error_line(result, f"cannot start or reach a Ray cluster at 127.0.0.1:{port}", "refused", code=3)
    assert not list(tmp_path.rglob("summary.json"))
