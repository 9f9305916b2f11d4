"""Real Ray clusters for tests: nodes started by ray.cluster_utils on 127.0.0.1, the test process connected."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from replay_check.executors import ray as ray_executor

# Without this (read when ray is imported), Ray rewrites a 127.0.0.1 address to the machine's outward IP before
# connecting, and nodes bound to 127.0.0.1 are unreachable. Also needed in a driver subprocess's environment.
LOOPBACK_ENV = {ray_executor.LOOPBACK_ENV: "0"}
# A killed node is declared dead after ~0.6 s instead of Ray's default of about 15 s.
FAST_NODE_DEATH = {"health_check_period_ms": 200, "health_check_timeout_ms": 200,
                   "health_check_failure_threshold": 3, "health_check_initial_delay_ms": 0}


@contextmanager
def local_cluster(head_cpus: int, *node_cpus: int, system_config: dict | None = None) -> Iterator:
    """A head with `head_cpus` CPUs and one node per `node_cpus`, everything on 127.0.0.1; the driver connected."""
    saved = {key: os.environ.get(key) for key in LOOPBACK_ENV}
    os.environ.update(LOOPBACK_ENV)
    import ray
    from ray.cluster_utils import Cluster

    try:
        for attempt in range(3):  # Ray gives a node a fixed 30 s to register, which a loaded machine can miss
            cluster = Cluster()
            try:
                cluster.add_node(num_cpus=head_cpus, include_dashboard=False, node_ip_address="127.0.0.1",
                                 _system_config=system_config or {})
                for cpus in node_cpus:
                    cluster.add_node(num_cpus=cpus, node_ip_address="127.0.0.1")
                ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
                cluster.wait_for_nodes()
                break
            except Exception:
                ray.shutdown()
                cluster.shutdown()
                if attempt == 2:
                    raise
        try:
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def task_processes(node, function: str = "run_job") -> list:
    """The worker processes of `node` (a cluster_utils node) executing `function` now (Ray titles them ray::NAME)."""
    import psutil

    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    found = []
    for process in raylet.children(recursive=True):
        try:
            if process.cmdline()[:1] == [f"ray::{function}"]:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            pass
    return found


def wait_for_task(node, function: str = "run_job", timeout: float = 60.0):
    """The one process of `node` executing `function`, once it has started."""
    deadline = time.monotonic() + timeout
    while not (found := task_processes(node, function)):
        assert time.monotonic() < deadline, f"no ray::{function} started on the node within {timeout:g} s"
        time.sleep(0.05)
    assert len(found) == 1, found
    return found[0]


def wait_for_cpus(cpus: float, timeout: float = 20.0) -> None:
    """Until the connected cluster has `cpus` CPUs free (cancelled tasks' workers killed, their CPUs returned)."""
    import ray

    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < cpus:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
