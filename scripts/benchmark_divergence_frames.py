"""What the frames at the first divergence cost at the end of a diverging run (a benchmark).

    python scripts/benchmark_divergence_frames.py --root DATASET [--episode 0] [--tolerance arm_rad=0.004]

The replay keeps only each compared step's snapshot; a run that diverges then renders that step again (building an
adapter in this process when the replay's own is closed: a GL context on ALOHA), decodes its recorded row again and
writes three PNGs. This replays the episode in image mode with a tolerance tight enough to diverge (no cause
analysis, no recording) and prints that end-of-run step's wall and CPU seconds and this process's PSS before,
during (sampled) and after.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

from replay_check.divergence_frames import FrameCapture
from replay_check.pipeline import RunRequest, run_episode
from replay_check.render_workers import process_pss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--tolerance", default="arm_rad=0.004", help="KEY=VALUE tight enough for a divergence")
    parser.add_argument("--render-workers", type=int, default=None)
    parser.add_argument("--report-dir", type=Path, default=Path("/tmp/replay-check-divergence-frames"))
    args = parser.parse_args()
    key, value = args.tolerance.split("=", 1)
    figures: dict[str, float] = {}
    write = FrameCapture.write

    def timed(self, result, folder, adapter=None):
        figures["pss_before_mb"] = process_pss_mb(os.getpid())
        peak, done = [figures["pss_before_mb"]], threading.Event()

        def sample() -> None:  # PSS every 50 ms while the frames are made (the adapter is closed at the end)
            while not done.wait(0.05):
                peak.append(process_pss_mb(os.getpid()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return write(self, result, folder, adapter)
        finally:
            figures["wall_s"], figures["cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
            done.set()
            sampler.join()
            figures["pss_peak_mb"], figures["pss_after_mb"] = max(peak), process_pss_mb(os.getpid())

    FrameCapture.write = timed
    outcome = run_episode(RunRequest(root=args.root, episode=args.episode, mode="images", rerun=None, plots=False,
                                     ensemble=0, resync=0, report_dir=args.report_dir,
                                     tolerance_overrides={key: float(value)}, render_workers=args.render_workers))
    result = outcome.result
    entry = result.divergence_frames
    if entry is None:
        print(f"no divergence with {args.tolerance} (verdict {result.verdict.status}): nothing rendered")
        return
    print(f"first divergence at step {entry['first_divergence_step']}, frames of step {entry['step']} "
          f"({', '.join(entry['images'])}) in {outcome.report_dir}")
    print(f"end-of-run frames: {figures['wall_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU (this process, sampler "
          f"included); its PSS {figures['pss_before_mb']:.0f} MB before, {figures['pss_peak_mb']:.0f} MB at most "
          f"meanwhile, {figures['pss_after_mb']:.0f} MB after")
    print(f"step loop: {result.step_loop['wall_s']:.1f} s wall, main process {result.step_loop['main_cpu_s']:.1f} s "
          f"CPU, main PSS {result.step_loop['main_pss_mb']:.0f} MB, workers' PSS {result.step_loop['workers_pss_mb']}")


if __name__ == "__main__":
    main()
