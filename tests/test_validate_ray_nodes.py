"""validate --executor ray when nodes are lost mid-episode, on a cluster of its own (its nodes come and go).

The head has no CPUs, so every task runs on the one worker node present when it starts, and the test
decides where each attempt runs by adding and killing nodes (raylet and all, not gracefully). Ray's
bounded retry: an episode whose node is lost on both attempts is `error`; one whose first node is lost
while a second node is free passes on the retry with the same verdict.
"""

from __future__ import annotations

import json
import signal
import time

import psutil
import pytest

from replay_check.validate import FAULT_ENV, ValidateRequest, validate_dataset
from tests.ray_cluster import FAST_NODE_DEATH, local_cluster, wait_for_task
from tests.report_paths import report_folder
from tests.test_validate_ray import EPISODES, record_four

pytestmark = pytest.mark.slow


def gone(processes: list, timeout: float = 20.0) -> bool:
    """True once every process has exited (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.2)
    return False


def test_lost_nodes_retry_once_then_error_and_the_batch_completes(tmp_path, monkeypatch):
    root = record_four(tmp_path / "pusht_four")
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
