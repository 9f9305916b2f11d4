"""The wall time of rendering every frame of one episode and nothing else, on all cores (a benchmark).

    python scripts/render_floor.py --root DATASET [--episode 0] [--processes N]

A lower bound for any replay that re-renders every frame on this machine with the dataset's cameras and the
simulator's own render settings: N processes (default: one per core, llvmpipe rasterising in each process's own
thread, as replay-check's render workers do) each import the simulator, build it, step through all of the
episode's actions (the physics is cheap next to the renders) and render every N-th step's cameras. No initial-state
estimate (the model's default state, which the recorded actions move within a few steps to the recorded
trajectory), no decoding, no comparison, no output. Timed as a whole process tree: `scripts/benchmark_vs_viewer.py
--floor` runs it beside `replay-check run` and the viewer, alternating, so its wall time is the denominator that
says how much of `run`'s time is the rendering itself.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path


def _share(root: Path, episode_index: int, part: int, parts: int) -> tuple[int, float]:
    """(frames rendered, seconds) for the steps t with t % parts == part."""
    from replay_check.dataset import open_dataset
    from replay_check.profiles import select_profile
    from replay_check.replay import adapter_for

    dataset = open_dataset(root=root)
    episode = dataset.episode(episode_index)
    profile = select_profile(dataset.meta)
    adapter = adapter_for(episode, profile)
    cameras = [profile.cameras[key] for key in episode.cameras]
    start = time.perf_counter()
    frames = 0
    for t in range(episode.length):
        if t % parts == part:
            for camera in cameras:
                adapter.render(camera)
                frames += 1
        if t < episode.length - 1:
            adapter.advance(episode.action[t])
    seconds = time.perf_counter() - start
    adapter.close()
    return frames, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="local LeRobot dataset")
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--processes", type=int, default=None, help="default: one per core")
    args = parser.parse_args()
    from replay_check.render_workers import available_cores, renderer_environment

    parts = args.processes or available_cores()
    os.environ.update({k: v for k, v in renderer_environment(parts).items() if k not in os.environ})
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(parts) as pool:
        shares = pool.starmap(_share, [(args.root, args.episode, part, parts) for part in range(parts)])
    wall = time.perf_counter() - start
    frames = sum(n for n, _ in shares)
    slowest = max(s for _, s in shares)
    print(f"{frames} frames in {parts} processes: {wall:.2f} s wall (pool included), render loops {slowest:.2f} s "
          f"at most = {1000 * slowest * parts / max(frames, 1):.1f} ms per frame per process")


if __name__ == "__main__":
    main()
