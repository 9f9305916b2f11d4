"""Cost of the cause analysis against one state replay (a benchmark, not a test).

    python scripts/benchmark_cause.py [--root DATASET] [--episode 0] [--members 8] [--processes 2] [--repeats 3]

On a 400-step ALOHA episode (default: the shared scripted insertion sample), with the initial state
estimated once beforehand, times in one run, interleaved `--repeats` times (medians, so ratios are
comparable on a noisy shared machine):
- one state-mode replay through the engine (`replay_episode`, metrics and verdict included),
- the re-synced replay (K=1) and its ratio to that replay,
- an ensemble of `--members` perturbed state-mode copies over `--processes` processes, and its ratio,
- the same ensemble in this process only (processes=1), for reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time
from pathlib import Path

import replay_check  # noqa: F401  (GL backend)
from replay_check.dataset import open_dataset
from replay_check.ensemble import run_ensemble
from replay_check.initial_state import recover_initial_state
from replay_check.profiles import select_profile
from replay_check.replay import adapter_for, replay_episode, sim_spec
from replay_check.resync import resync_replay
from replay_check.steps import ReplaySettings

SHARED = Path("/work/shared/datasets/aloha_sim_insertion_scripted_sample")


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and of the children it waited for)."""
    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    start, cpu0 = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - start, cpu() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SHARED)
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    dataset = open_dataset(root=args.root)
    episode = dataset.episode(args.episode)
    profile = select_profile(dataset.meta, None)
    settings = ReplaySettings(mode="state", tolerances=profile.tolerances, ensemble=0, resync=0)
    adapter = adapter_for(episode, profile)
    start = time.perf_counter()
    initial = recover_initial_state(episode, profile, adapter)
    estimate_s = time.perf_counter() - start
    adapter.close()
    state_spec = dataclasses.replace(sim_spec(episode, profile), cameras={})

    replay, resync, ensemble, inline = [], [], [], []
    for _ in range(args.repeats):
        replay.append(timed(lambda: replay_episode(episode, profile, settings, initial_state=initial)))
        resync.append(timed(lambda: resync_replay(episode, profile, state_spec, initial, profile.tolerances, 1)))
        ensemble.append(timed(lambda: run_ensemble(state_spec, initial, episode.action, args.members,
                                                   args.processes)))
        inline.append(timed(lambda: run_ensemble(state_spec, initial, episode.action, args.members, 1)))
    runs = {"replay": replay, "resync": resync, "ensemble": ensemble, "inline": inline}
    wall = {name: statistics.median(w for w, _ in v) for name, v in runs.items()}
    cpu = {name: statistics.median(c for _, c in v) for name, v in runs.items()}
    print(f"episode: {args.root.name} #{args.episode}, {episode.length} steps, state mode; "
          f"initial-state estimate {estimate_s:.2f} s (once, not in the figures below)")
    print(f"medians of {args.repeats} interleaved runs; wall / CPU seconds (CPU: this process + waited-for children)")
    print("  all runs (wall): " + ", ".join(f"{k} {'/'.join(f'{w:.2f}' for w, _ in v)}" for k, v in runs.items()))
    rows = [("one state replay", "replay", ""), ("re-synced replay (K=1)", "resync", "target <= 1.2x"),
            (f"ensemble of {args.members}, {args.processes} processes", "ensemble", "target <= 2x on 2 cores"),
            (f"ensemble of {args.members}, 1 process", "inline", "")]
    for label, key, target in rows:
        print(f"{label:34s} wall {wall[key]:7.2f} s  {wall[key] / wall['replay']:5.2f}x   "
              f"CPU {cpu[key]:7.2f} s  {cpu[key] / cpu['replay']:5.2f}x   {target}")


if __name__ == "__main__":
    main()
