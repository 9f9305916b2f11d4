"""Cost of running the simulator in a worker process (a benchmark, not a test).

    python scripts/benchmark_stacks.py                             # the embedded sample episode
    python scripts/benchmark_stacks.py --root DATASET --episode 0 [--stack aloha-2023] [--image-steps 100]

Replays the same episode from the same initial state in process and through a ProxyAdapter (a worker on this
environment's interpreter, and optionally on a built stack), in state mode and in image mode, and prints wall time
and CPU time (this process plus the worker) per step with their worker/in-process ratios. State mode runs
`--repeats` rounds, each replaying once on every adapter (all open at once), and prints medians. Rendering is serial
(render_workers=0) so the ratio is the worker's alone. Initial-state estimation (renders through the adapter) is
timed too. Everything runs in one process, one after the other, so the ratios are comparable on a loaded machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import replay_check  # noqa: F401  (GL backend)
from replay_check.initial_state import recover_initial_state
from replay_check.pipeline import RunRequest, prepare
from replay_check.replay import replay_episode, sim_spec
from replay_check.sims import make_adapter
from replay_check.stacks.runner import open_adapter, slot_bytes
from replay_check.worker.proxy import ProxyAdapter


def worker_cpu(adapter) -> float:
    """CPU seconds used so far by the adapter's worker process (0 in process)."""
    pid = getattr(adapter, "pid", None)
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_replay(episode, profile, settings, initial, adapter) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process plus the worker, result)."""
    start, cpu = time.perf_counter(), time.process_time() + worker_cpu(adapter)
    result = replay_episode(episode, profile, settings, adapter=adapter, initial_state=initial, render_workers=0)
    return time.perf_counter() - start, time.process_time() + worker_cpu(adapter) - cpu, result


def adapters(episode, profile, stack: str | None):
    spec = sim_spec(episode, profile)
    yield "in-process", make_adapter(spec)
    yield "worker (installed)", ProxyAdapter(sys.executable, spec, slot_bytes=slot_bytes(spec), isolated=False)
    if stack:
        adapter, _ = open_adapter(stack, spec, progress=lambda text: print(text, file=sys.stderr))
        yield f"worker ({stack})", adapter


def truncate(episode, steps: int | None):
    if not steps or steps >= episode.length:
        return episode
    cut = {name: getattr(episode, name)[:steps] for name in ("state", "action", "timestamps", "environment_state",
                                                               "reward", "success", "done")
           if getattr(episode, name) is not None}
    return dataclasses.replace(episode, **cut)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--stack", default=None, help="also time a worker on this built stack")
    parser.add_argument("--repeats", type=int, default=5, help="state-mode rounds over the adapters (medians)")
    parser.add_argument("--image-steps", type=int, default=None, help="replay only the first N steps in image mode")
    args = parser.parse_args()
    rows = []
    for mode in ("state", "images"):
        episode, profile, settings = prepare(RunRequest(root=args.root, episode=args.episode, mode=mode))
        if mode == "images":
            episode = truncate(episode, args.image_steps)
        repeats = args.repeats if mode == "state" else 1
        opened = list(adapters(episode, profile, args.stack))
        try:
            initial, estimates = None, {}
            for name, adapter in opened:
                start = time.perf_counter()
                estimated = recover_initial_state(episode, profile, adapter)
                estimates[name] = time.perf_counter() - start
                initial = initial or estimated
                for camera in adapter.camera_names:  # warm the GL context outside the timed replay
                    adapter.render(camera)
            runs = {name: [] for name, _ in opened}
            for _ in range(repeats):  # rounds over every adapter: a load spike slows one round, not one adapter
                for name, adapter in opened:
                    runs[name].append(timed_replay(episode, profile, settings, initial, adapter))
        finally:
            for _, adapter in opened:
                adapter.close()
        base_name = opened[0][0]
        base_wall = statistics.median(r[0] for r in runs[base_name])
        base_cpu = statistics.median(r[1] for r in runs[base_name])
        for name, _ in opened:
            wall = statistics.median(r[0] for r in runs[name])
            cpu = statistics.median(r[1] for r in runs[name])
            ratios = [r[0] / b[0] for r, b in zip(runs[name], runs[base_name], strict=True)]
            result = runs[name][-1][2]
            rows.append((mode, name, episode.length, wall, wall / base_wall, min(ratios), max(ratios),
                         1000 * cpu / episode.length, cpu / base_cpu, estimates[name], result.verdict.status,
                         result.summary.get("replayed_success")))
    print("wall time is what a user waits; CPU time (this process + the worker) is what the worker costs, and it is")
    print(f"the steadier figure on a loaded machine (load average now {os.getloadavg()[0]:.1f})")
    print(f"state mode: medians of {args.repeats} rounds over the adapters; 'round x' is the lowest-highest ratio "
          "within a round")
    print(f"{'mode':<7} {'adapter':<24} {'steps':>5} {'wall s':>8} {'wall x':>7} {'round x':>11} {'cpu ms/step':>11} "
          f"{'cpu x':>6} {'estimate s':>10}  verdict / success")
    for mode, name, steps, seconds, ratio, low, high, cpu_ms, cpu_ratio, estimate_s, status, success in rows:
        print(f"{mode:<7} {name:<24} {steps:>5} {seconds:>8.2f} {ratio:>7.2f} {low:>5.2f}-{high:<5.2f} {cpu_ms:>11.2f} "
              f"{cpu_ratio:>6.2f} {estimate_s:>10.2f}  {status} / {success}")


if __name__ == "__main__":
    main()
