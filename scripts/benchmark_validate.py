"""Wall time of `validate` on 8 recorded episodes in state mode: local pool with 1 and 2 workers, Ray (a benchmark).

    python scripts/benchmark_validate.py                       # records 8 aloha-transfer-cube episodes first
    python scripts/benchmark_validate.py --root DATASET --episodes 0:8 [--steps 200] [--no-ray]

Prints the wall time of each run, the 2-worker speed-up over 1 worker, the wall time on a local Ray
cluster (a head and a second node, one CPU each, on 127.0.0.1) and Ray's per-task overhead: the mean
round trip of a no-op task, and (Ray wall - local 2-worker wall) per episode. All runs happen in one
process, in one go, alternating 1 and 2 workers `--repeat` times and keeping each one's fastest run, so
the ratios are comparable on a noisy shared machine. Reports go to a temporary folder; every run uses
--force so nothing is reused.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep 127.0.0.1 addresses as given (before ray)

from replay_check.validate import ValidateRequest, validate_dataset  # noqa: E402


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the local pool's workers once closed)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(request: ValidateRequest) -> tuple[float, dict]:
    start, cpu = time.perf_counter(), _cpu_seconds()
    batch = validate_dataset(request)
    wall = time.perf_counter() - start
    counts = dict(batch.counts, cpu_s=round(_cpu_seconds() - cpu, 1))  # Ray workers' CPU is not counted
    return wall, counts


def ray_noop_round_trip(tasks: int = 50) -> float:
    """Mean seconds for one sequential no-op task (submit, run on a warm worker, get)."""
    import ray

    @ray.remote(num_cpus=1)
    def noop(x: int) -> int:
        return x

    ray.get(noop.remote(0))  # warm a worker
    start = time.perf_counter()
    for i in range(tasks):
        ray.get(noop.remote(i))
    return (time.perf_counter() - start) / tasks


def local_cluster(attempts: int = 3):
    """A head and a second node on 127.0.0.1; retried, since Ray gives a node 30 s to register (a loaded machine)."""
    import ray
    from ray.cluster_utils import Cluster

    for attempt in range(attempts):
        cluster = Cluster()
        try:
            cluster.add_node(num_cpus=1, include_dashboard=False, node_ip_address="127.0.0.1")
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
            cluster.wait_for_nodes()
            return cluster
        except Exception as exc:
            ray.shutdown()
            cluster.shutdown()
            if attempt == attempts - 1:
                raise
            print(f"ray cluster did not start ({exc}); retrying")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="dataset to validate (default: record one into a temp folder)")
    parser.add_argument("--episodes", default="0:8")
    parser.add_argument("--steps", type=int, default=200, help="steps per recorded episode when recording")
    parser.add_argument("--repeat", type=int, default=2, help="runs per local configuration (fastest is kept)")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        root = args.root
        if root is None:
            from replay_check.record import record_dataset

            root = Path(tmp) / "cube8"
            start = time.perf_counter()
            record_dataset("aloha-transfer-cube", 8, root, seed=0, env_state=True, progress=False, steps=args.steps)
            took = time.perf_counter() - start
            print(f"recorded 8 aloha-transfer-cube episodes x {args.steps} steps in {took:.1f} s")
        base = {"root": root, "episodes": args.episodes, "mode": "state", "plots": True, "force": True,
                "report_dir": Path(tmp) / "reports"}
        walls: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(max(1, args.repeat)):
            for workers in (1, 2):
                wall, counts = timed(ValidateRequest(workers=workers, **base))
                walls[workers].append(wall)
                print(f"local, {workers} worker(s): {wall:6.2f} s  {counts}")
        one, two = min(walls[1]), min(walls[2])
        print(f"local fastest   : 1 worker {one:.2f} s, 2 workers {two:.2f} s; speed-up 2 vs 1: {one / two:.2f}x")
        if args.no_ray:
            return
        start = time.perf_counter()
        cluster = local_cluster()
        print(f"ray cluster up  : {time.perf_counter() - start:6.2f} s (head + 1 node, 1 CPU each, 127.0.0.1)")
        try:
            wall, counts = timed(ValidateRequest(executor="ray", ray_address=cluster.address, **base))
            print(f"ray, 2 nodes    : {wall:6.2f} s  {counts} (workers start cold: imports paid once per worker)")
            warm, counts = timed(ValidateRequest(executor="ray", ray_address=cluster.address, **base))
            print(f"ray, warm again : {warm:6.2f} s  {counts} (same driver, workers reused)")
            episodes = counts["total"]
            print(f"ray overhead    : {1000 * ray_noop_round_trip():6.1f} ms per no-op task round trip; "
                  f"{1000 * (warm - two) / episodes:+6.0f} ms per episode vs local 2 workers (warm)")
        finally:
            import ray

            ray.shutdown()
            cluster.shutdown()


if __name__ == "__main__":
    main()
