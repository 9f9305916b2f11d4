"""Per-step cost of a replay, split by phase, serial and pipelined, and peak memory (a benchmark, not a test).

    python scripts/benchmark.py                      # records a 400-step ALOHA insertion episode into /tmp first
    python scripts/benchmark.py --root DATASET --episode 0 [--pusht-root DATASET] [--render-workers 0,2] [--steps N]
    python scripts/benchmark.py --only pusht --pusht-root DATASET --repeat 5   # one family; best of 5 (busy machine)
    python scripts/benchmark.py --state-only         # the physics floor and state mode alone (seconds)

Prints ms/step for: the physics floor (adapter.step only), state mode (at least 5 runs alternating with the floor,
medians, wall and CPU time; again with the contact timeline `run` adds), the decode and render floors, and image mode
(with a Rerun recording) once per render-worker count (0 = serial, in step order), split into decode / physics /
render / objects / metrics / sinks, with its ratio to the decode+render floor, the CPU use of the step loop
(cpu-s / wall-s over the main process and its render workers), peak memory (main process + render workers) and
whether the metrics equal the serial run's bit for bit. Each image-mode run is a fresh process, so its peak memory
is its own; it imports and builds the simulator once before its clock starts (as the floors are measured warm) and
prints how long that took. Everything is measured in one run so ratios are comparable on a noisy shared machine;
`--repeat N` runs every floor and image-mode configuration N times (configurations alternating) and prints the
fastest of each, with the median wall time beside it. `--recorded-ahead` adds each image-mode configuration with the
recorded frames decoded and measured in a thread ahead of the comparison and without (replay_episode(recorded_ahead=
True / False); the default is on where a render worker steps the physics, PushT's default).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

import replay_check  # noqa: F401  (GL backend)
from replay_check.dataset import open_dataset
from replay_check.initial_state import recover_initial_state
from replay_check.profiles import select_profile
from replay_check.render_workers import auto_worker_count
from replay_check.replay import adapter_for, replay_episode
from replay_check.steps import ReplaySettings


def ms_per_step(seconds: float, steps: int) -> float:
    return 1000.0 * seconds / max(1, steps)


def physics_floor(episode, profile, initial) -> tuple[float, float]:
    """(wall, CPU) ms per step of adapter.step alone over the episode's actions (the adapter built beforehand)."""
    adapter = adapter_for(episode, profile)
    adapter.restore(initial)
    start, cpu = time.perf_counter(), time.process_time()
    for action in episode.action[:-1]:
        adapter.step(action)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    adapter.close()
    return ms_per_step(elapsed, episode.length - 1), ms_per_step(cpu, episode.length - 1)


STATE_PAIRS = 5  # at least this many floor / state-mode pairs


@dataclasses.dataclass
class Paired:
    """Physics floor and state mode run alternately: wall and CPU ms/step of each run."""

    floor_wall: list[float] = dataclasses.field(default_factory=list)
    state_wall: list[float] = dataclasses.field(default_factory=list)
    floor_cpu: list[float] = dataclasses.field(default_factory=list)
    state_cpu: list[float] = dataclasses.field(default_factory=list)

    def line(self, label: str) -> str:
        floor, state = statistics.median(self.floor_wall), statistics.median(self.state_wall)
        ratios = [s / f for s, f in zip(self.state_wall, self.floor_wall, strict=True)]
        cpu = statistics.median(self.state_cpu) / statistics.median(self.floor_cpu)
        return (f"{label:<18} {state:8.2f} ms/step   ({state / floor:.2f}x physics floor, medians of "
                f"{len(ratios)}; pairs {min(ratios):.2f}-{max(ratios):.2f}; CPU time {cpu:.2f}x)")


def state_mode(episode, profile, initial, pairs: int, probes: bool = False) -> Paired:
    """Physics floor and state mode, `pairs` times alternating (a load spike slows one pair, not one side).

    State mode is `replay_episode` whole: its adapter built, every step compared, the result concluded;
    `probes` adds the contact timeline `run` adds. Both run in this process only, so CPU time
    (process_time) is the steadier figure on a loaded machine.
    """
    from replay_check.contacts import ContactTimeline

    paired = Paired()
    settings = ReplaySettings(mode="state", tolerances=profile.tolerances)
    for _ in range(pairs):
        wall, cpu = physics_floor(episode, profile, initial)
        paired.floor_wall.append(wall)
        paired.floor_cpu.append(cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        replay_episode(episode, profile, settings, initial_state=initial, probes=[ContactTimeline()] if probes else ())
        paired.state_wall.append(ms_per_step(time.perf_counter() - wall, episode.length))
        paired.state_cpu.append(ms_per_step(time.process_time() - cpu, episode.length))
    return paired


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


def _metrics_digest(columns) -> str:
    digest = hashlib.sha256()
    for name in sorted(columns):
        digest.update(name.encode())
        digest.update(columns[name].tobytes())
    return digest.hexdigest()


def load(root: Path, episode_index: int, steps: int | None):
    """(episode, profile), the episode cut to its first `steps` rows when given."""
    dataset = open_dataset(root=root)
    episode = dataset.episode(episode_index)
    if steps is not None and steps < episode.length:
        cut = {name: getattr(episode, name)[:steps] for name in
               ("timestamps", "state", "action", "environment_state", "reward", "success", "done")
               if getattr(episode, name) is not None}
        episode = dataclasses.replace(episode, **cut)
    return episode, select_profile(dataset.meta)


def _image_run(root: Path, episode_index: int, steps: int | None, initial, rrd: Path, workers: int, ahead,
               queue) -> None:
    """One image-mode replay with a Rerun recording as `run` writes it, in a fresh process; figures to `queue`."""
    from replay_check.pipeline import recorded_videos
    from replay_check.viz import RerunSink

    episode, profile = load(root, episode_index, steps)
    t0 = time.perf_counter()
    adapter_for(episode, profile).close()  # imports the simulator's modules, like the warm floors
    warm_s = time.perf_counter() - t0
    sink = RerunSink(recording_name="bench", rrd_path=rrd, cameras=list(episode.cameras),
                     state_names=list(episode.state_names or []), groups=profile.state_groups,
                     objects=list(profile.objects), fps=episode.fps,
                     recorded_videos=recorded_videos(episode, list(episode.cameras)))
    t0 = time.perf_counter()
    result = replay_episode(episode, profile, ReplaySettings(mode="images", tolerances=profile.tolerances),
                            initial_state=initial, sinks=[sink], render_workers=workers,
                            **({} if ahead is None else {"recorded_ahead": ahead}))  # older trees lack the option
    wall = time.perf_counter() - t0
    queue.put({
        "wall_s": wall,
        "warm_s": warm_s,
        "loop": result.step_loop,
        "phases": result.timings_ms_per_step,
        "main_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "digest": _metrics_digest(result.metrics),
        "rrd_mb": rrd.stat().st_size / 1e6 if rrd.exists() else None,
    })


def image_mode(root: Path, episode_index: int, steps: int | None, initial, rrd: Path, workers: int,
               ahead: bool | None = None) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_image_run, args=(root, episode_index, steps, initial, rrd, workers, ahead,
                                                       queue))
    process.start()
    figures = queue.get()
    process.join()
    return figures


def bench_dataset(root: Path, episode_index: int, rrd_dir: Path, worker_counts: list[int],
                  steps: int | None = None, repeat: int = 1, state_only: bool = False,
                  ahead: bool = False) -> None:
    episode, profile = load(root, episode_index, steps)
    probe = adapter_for(episode, profile)
    t0 = time.perf_counter()
    initial = recover_initial_state(episode, profile, probe)
    estimate_s = time.perf_counter() - t0
    probe.close()
    print(f"\n== {episode.meta.name} episode {episode_index}: {episode.length} steps, profile {profile.name}, "
          f"cameras {list(episode.cameras)}; initial state {initial.method} in {estimate_s:.2f} s")
    pairs = max(STATE_PAIRS, repeat)
    paired = state_mode(episode, profile, initial, pairs)
    phys = statistics.median(paired.floor_wall)
    print(f"physics floor      {phys:8.2f} ms/step   (median of {pairs})")
    print(paired.line("state mode"))
    print(state_mode(episode, profile, initial, pairs, probes=True).line("  + contacts"))
    if not episode.cameras or state_only:
        return
    dec = min(decode_floor(episode) for _ in range(repeat))
    ren = min(render_floor(episode, profile, initial) for _ in range(repeat))
    floor = dec + ren
    print(f"decode floor       {dec:8.2f} ms/frame")
    print(f"render floor       {ren:8.2f} ms/frame")
    print(f"decode+render      {floor:8.2f} ms/step   ({floor * episode.length / 1000:.1f} s for the episode)")
    # (render workers, recorded_ahead): None = the default, True / False = recorded frames decoded and measured in a
    # thread ahead of the comparison / in step order
    configs = [(workers, mode) for workers in worker_counts for mode in ((False, True) if ahead else (None,))]
    runs: dict[tuple[int, bool | None], list[dict]] = {config: [] for config in configs}
    for _ in range(repeat):
        for workers, mode in configs:
            rrd = rrd_dir / f"{episode.meta.name}-{workers}.rrd"
            runs[workers, mode].append(image_mode(root, episode_index, steps, initial, rrd, workers, mode))
    serial_digest = None
    for workers, mode in configs:
        walls = sorted(r["wall_s"] for r in runs[workers, mode])
        run = min(runs[workers, mode], key=lambda r: r["wall_s"])
        image_ms = ms_per_step(run["wall_s"], episode.length)
        loop, phases = run["loop"], run["phases"]
        stepping = f" (stepping from step {loop['worker_from_step']})" if loop.get("steps_in_worker") else ""
        label = ("serial" if workers == 0 else f"{workers} render workers") + stepping + {
            None: "", True: ", recorded ahead", False: ", in order"}[mode]
        cpu = "n/a" if loop.get("cpu_s") is None else f"{loop['cpu_s'] / loop['wall_s']:.2f}"
        print(f"image mode, {label:<17} {run['wall_s']:7.2f} s = {image_ms:7.2f} ms/step "
              f"({image_ms / floor:.2f}x decode+render floor); step loop {loop['wall_s']:.2f} s, "
              f"cpu-s/wall-s {cpu}; simulator imported and built before the clock in {run['warm_s']:.2f} s")
        if loop.get("worker_from_s") is not None and loop["worker_from_step"] < episode.length:
            rest = episode.length - loop["worker_from_step"]
            after = ms_per_step(loop["wall_s"] - loop["worker_from_s"], rest)
            print(f"  after the takeover   {after:8.2f} ms/step ({after / floor:.2f}x decode+render floor) over the "
                  f"last {rest} steps, {loop['worker_from_s']:.2f} s into the loop")
        if repeat > 1:
            median = ms_per_step(walls[len(walls) // 2], episode.length)
            print(f"  fastest of {repeat} runs; median {median:.2f} ms/step")
        if loop.get("cpu_s") is not None:
            split = "" if not workers else (
                f" (main process {ms_per_step(loop['main_cpu_s'], episode.length):.2f} ms, render workers "
                f"{ms_per_step(loop['cpu_s'] - loop['main_cpu_s'], episode.length):.2f} ms)")
            print(f"  CPU per step         {ms_per_step(loop['cpu_s'], episode.length):8.2f} ms{split}")
        for phase in ("render_workers_start", "simulator", "physics", "submit", "decode", "render", "objects",
                      "metrics", "sinks", "ahead_decode", "ahead_objects"):
            if phase in phases:
                print(f"  {phase:<20} {phases[phase]:8.2f} ms/step")
        workers_mb = loop.get("workers_peak_rss_mb") or 0.0
        pss = (loop.get("main_pss_mb") or 0.0) + (loop.get("workers_pss_mb") or 0.0)
        print(f"  peak memory          {run['main_peak_mb'] + workers_mb:8.0f} MB RSS (main {run['main_peak_mb']:.0f}"
              f" + render workers {workers_mb:.0f}); {pss:.0f} MB PSS at the loop's end (shared pages counted"
              f" once); .rrd {run['rrd_mb'] or 0:.1f} MB")
        if serial_digest is None:
            serial_digest = run["digest"]
        same = all(r["digest"] == serial_digest for r in runs[workers, mode])
        if (workers, mode) != configs[0] or repeat > 1:
            print(f"  metrics identical to the first run: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="ALOHA dataset (default: record one 400-step episode)")
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--pusht-root", type=Path, help="PushT dataset (default: record one episode)")
    parser.add_argument("--pusht-episode", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="replay only the first N steps of the ALOHA episode")
    parser.add_argument("--render-workers", default=f"0,{auto_worker_count() or 2}",
                        help="comma-separated render-worker counts to run image mode with (0 = serial)")
    parser.add_argument("--only", choices=("aloha", "pusht"), help="benchmark one family only")
    parser.add_argument("--recorded-ahead", action="store_true",
                        help="run each image-mode configuration with recorded frames decoded and measured in a "
                             "thread ahead of the comparison and without (recorded_ahead=True / False)")
    parser.add_argument("--repeat", type=int, default=1, help="run everything N times, print the fastest")
    parser.add_argument("--state-only", action="store_true", help="only the physics floor and state mode")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    counts = [int(c) for c in args.render_workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="replay-check-bench-"))
    aloha, pusht = args.only in (None, "aloha"), args.only in (None, "pusht")
    if (aloha and args.root is None) or (pusht and args.pusht_root is None):
        from replay_check.record import record_dataset

        if aloha and args.root is None:
            args.root = work / "aloha"
            record_dataset("aloha-insertion", 1, args.root, seed=0, env_state=False, progress=False)
        if pusht and args.pusht_root is None:
            args.pusht_root = work / "pusht"
            try:
                record_dataset("pusht", 1, args.pusht_root, seed=0, env_state=False, progress=False)
            except Exception as exc:  # PushT support may be absent in a partial install
                print(f"(PushT skipped: {exc})")
                args.pusht_root = None
    if aloha:
        bench_dataset(args.root, args.episode, work, counts, args.steps, args.repeat, args.state_only,
                      args.recorded_ahead)
    if pusht and args.pusht_root:
        bench_dataset(args.pusht_root, args.pusht_episode, work, counts, repeat=args.repeat,
                      state_only=args.state_only, ahead=args.recorded_ahead)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the benchmark process itself (floors, state mode) {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
