"""Per-step cost of a replay, split by phase, and peak memory (a benchmark, not a test).

    python scripts/benchmark.py                      # records a 400-step ALOHA insertion episode into /tmp first
    python scripts/benchmark.py --root DATASET --episode 0 [--pusht-root DATASET]

Prints ms/step for: the physics floor (adapter.step only), state mode, the decode and render floors, and image mode
split into decode / physics / render / metrics / sinks (Rerun logging), plus ratios against the floors and the peak
RSS. Everything is measured in one run so ratios are comparable on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import replay_check  # noqa: F401  (GL backend)
from replay_check.dataset import open_dataset
from replay_check.initial_state import recover_initial_state
from replay_check.profiles import select_profile
from replay_check.replay import adapter_for, replay_episode
from replay_check.steps import ReplaySettings


def ms_per_step(seconds: float, steps: int) -> float:
    return 1000.0 * seconds / max(1, steps)


def physics_floor(episode, profile, initial) -> float:
    adapter = adapter_for(episode, profile)
    adapter.restore(initial)
    start = time.perf_counter()
    for action in episode.action[:-1]:
        adapter.step(action)
    elapsed = time.perf_counter() - start
    adapter.close()
    return ms_per_step(elapsed, episode.length - 1)


def decode_floor(episode) -> float:
    start = time.perf_counter()
    count = 0
    for source in episode.cameras.values():
        for _ in source.iter_frames(0):
            count += 1
    return ms_per_step(time.perf_counter() - start, episode.length)


def render_floor(episode, profile, initial, frames: int = 50) -> float:
    adapter = adapter_for(episode, profile)
    adapter.restore(initial)
    cams = [profile.cameras[k] for k in episode.cameras]
    for cam in cams:  # the first render creates the GL context
        adapter.render(cam)
    start = time.perf_counter()
    for _ in range(frames):
        for cam in cams:
            adapter.render(cam)
    elapsed = time.perf_counter() - start
    adapter.close()
    return ms_per_step(elapsed, frames)


def bench_dataset(root: Path, episode_index: int, rrd_dir: Path) -> None:
    from replay_check.viz import RerunSink

    dataset = open_dataset(root=root)
    episode = dataset.episode(episode_index)
    profile = select_profile(dataset.meta)
    probe = adapter_for(episode, profile)
    t0 = time.perf_counter()
    initial = recover_initial_state(episode, profile, probe)
    estimate_s = time.perf_counter() - t0
    probe.close()
    print(f"\n== {dataset.meta.name} episode {episode_index}: {episode.length} steps, profile {profile.name}, "
          f"cameras {list(episode.cameras)}; initial state {initial.method} in {estimate_s:.2f} s")
    phys = physics_floor(episode, profile, initial)
    t0 = time.perf_counter()
    replay_episode(episode, profile, ReplaySettings(mode="state", tolerances=profile.tolerances), initial_state=initial)
    state_ms = ms_per_step(time.perf_counter() - t0, episode.length)
    print(f"physics floor      {phys:8.2f} ms/step")
    print(f"state mode         {state_ms:8.2f} ms/step   ({state_ms / phys:.2f}x physics floor)")
    if not episode.cameras:
        return
    dec = decode_floor(episode)
    ren = render_floor(episode, profile, initial)
    sink = RerunSink(recording_name="bench", rrd_path=rrd_dir / f"{dataset.meta.name}.rrd",
                     cameras=list(episode.cameras),
                     state_names=list(episode.state_names or []), groups=profile.state_groups,
                     objects=list(profile.objects), fps=episode.fps)
    t0 = time.perf_counter()
    result = replay_episode(episode, profile, ReplaySettings(mode="images", tolerances=profile.tolerances),
                            initial_state=initial, sinks=[sink])
    image_ms = ms_per_step(time.perf_counter() - t0, episode.length)
    phases = result.extra["timings_ms_per_step"]
    floor = dec + ren
    print(f"decode floor       {dec:8.2f} ms/frame")
    print(f"render floor       {ren:8.2f} ms/frame")
    print(f"image mode         {image_ms:8.2f} ms/step   ({image_ms / floor:.2f}x decode+render floor {floor:.2f})")
    for phase in ("decode", "physics", "render", "objects", "metrics", "sinks"):
        print(f"  {phase:<16} {phases.get(phase, 0.0):8.2f} ms/step")
    in_run_floor = phases.get("decode", 0.0) + phases.get("render", 0.0)
    print(f"  vs decode+render inside this run {in_run_floor:.2f} ms: {image_ms / in_run_floor:.2f}x")
    rrd = rrd_dir / f"{dataset.meta.name}.rrd"
    if rrd.exists():
        print(f"  .rrd size        {rrd.stat().st_size / 1e6:8.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="ALOHA dataset (default: record one 400-step episode)")
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--pusht-root", type=Path, help="PushT dataset (default: record one episode)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="replay-check-bench-"))
    if args.root is None or args.pusht_root is None:
        from replay_check.record import record_dataset

        if args.root is None:
            args.root = work / "aloha"
            record_dataset("aloha-insertion", 1, args.root, seed=0, env_state=False, progress=False)
        if args.pusht_root is None:
            args.pusht_root = work / "pusht"
            try:
                record_dataset("pusht", 1, args.pusht_root, seed=0, env_state=False, progress=False)
            except Exception as exc:  # PushT support may be absent in a partial install
                print(f"(PushT skipped: {exc})")
                args.pusht_root = None
    bench_dataset(args.root, args.episode, work)
    if args.pusht_root:
        bench_dataset(args.pusht_root, 0, work)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
