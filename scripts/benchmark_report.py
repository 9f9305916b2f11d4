"""What a run costs after its step loop, outside the engine: the report folder and the process's exit (a benchmark).

    python scripts/benchmark_report.py [--rounds 5] [--steps 400]

Each figure comes from fresh child processes, as at the end of `replay-check run`, alternating the variants
round by round so drift on a shared machine hits all of them; medians are printed.
- report: write_episode_report on a synthetic ALOHA insertion result (`--steps` steps, every metric column, a
  divergence in the right arm, so the plots carry limit and divergence lines): wall and CPU seconds of the
  whole write, of which importing matplotlib; once with the report's fixed margins and once with matplotlib's
  constrained layout put back (the layout the plots used before), to show what the fixed margins save.
- exit: a process holding the modules a run imports (mujoco, dm_control, gym-aloha, rerun, pyarrow, cv2,
  matplotlib) ends with sys.exit (the interpreter's teardown) or process_exit.exit_now; the time from the
  exit call to the parent reaping the child.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORT_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from replay_check import divergence, report
from replay_check.dataset.episode import DatasetMeta
from replay_check.families import family_of
from replay_check.metric_table import columns_for
from replay_check.profiles import available_profiles
from replay_check.sims.base import InitialState, Pose
from replay_check.steps import ReplayResult, ReplaySettings

layout, steps, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
profile = available_profiles()["aloha-insertion"]
family = family_of(profile)
rng = np.random.default_rng(0)
cols = {}
for col in columns_for(profile, object_units=family.object_units, planar=family.planar,
                       cameras=sorted(profile.cameras)):
    name = col.column
    if col.metric.key == "psnr":
        values = 43 + rng.normal(0, 1, steps)
    elif col.metric.key == "ssim":
        values = 0.99 + rng.normal(0, 0.002, steps)
    elif col.metric.key == "unstable":
        values = np.zeros(steps)
    else:
        values = np.abs(rng.normal(0, 0.002, steps))
    cols[name] = values
cols["group/right_arm"][steps // 2:] += 0.3  # diverges halfway
settings = ReplaySettings(tolerances=profile.tolerances)
checks = divergence.checks_for(profile, settings.tolerances, cols)
found = divergence.find_divergences(cols, checks, settings.tolerances.consecutive_steps)
summary = divergence.summarize(cols, state_names=[], objects=list(profile.objects))
verdict = divergence.decide_verdict(found, summary, length=steps, tolerances=settings.tolerances,
                                    replayed_success=True, recorded_success=True, unstable_step=None)
meta = DatasetMeta(root=Path("/data/insertion"), codebase_version="v3.0", fps=50.0, robot_type="aloha",
                   total_episodes=1, total_frames=steps, features={}, tasks=("insert",))
initial = InitialState(robot=np.zeros(14), objects={o: Pose(np.array([0.1, 0.5, 0.05])) for o in profile.objects},
                       method="estimated", residual=3.0)
result = ReplayResult(meta=meta, episode_index=0, length=steps, profile=profile, settings=settings,
                      initial_state=initial, metrics=cols, divergence=found, summary=summary, verdict=verdict,
                      versions=report.versions(), task="insert")
ready_wall, ready_cpu = time.perf_counter(), time.process_time()
import matplotlib.figure  # noqa: F401  (timed on its own: write_episode_report imports it first thing)
from matplotlib.backends import backend_agg  # noqa: F401
import_wall = time.perf_counter() - ready_wall
if layout == "constrained":  # the plots' layout before the fixed margins
    import matplotlib.figure
    base = matplotlib.figure.Figure
    class Constrained(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, layout="constrained", **kwargs)
    matplotlib.figure.Figure = Constrained
report.write_episode_report(result, out)
print(json.dumps({"write_wall": time.perf_counter() - ready_wall, "write_cpu": time.process_time() - ready_cpu,
                  "import_wall": import_wall, "plots": sorted(p.name for p in out.glob("*.png"))}))
"""

EXIT_CHILD = r"""
import sys, time
import mujoco, dm_control.mujoco, gym_aloha.env, rerun, pyarrow.parquet, cv2, matplotlib.figure  # noqa: F401
import replay_check.cli, replay_check.pipeline, replay_check.report, replay_check.viz  # noqa: F401
from replay_check.process_exit import exit_now
how = sys.argv[1]
print(time.time(), flush=True)
exit_now(0) if how == "exit_now" else sys.exit(0)
"""


def _child(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("MUJOCO_GL", "egl")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)


def _report(layout: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(_child(REPORT_CHILD, layout, str(steps), str(Path(tmp) / "ep")).stdout)


def _exit(how: str) -> float:
    proc = _child(EXIT_CHILD, how)
    return time.time() - float(proc.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    reports: dict[str, list[dict]] = {"fixed": [], "constrained": []}
    exits: dict[str, list[float]] = {"sys.exit": [], "exit_now": []}
    for _ in range(args.rounds):
        for layout in reports:
            reports[layout].append(_report(layout, args.steps))
        for how in exits:
            exits[how].append(_exit(how))
    med = statistics.median
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.rounds} rounds, medians")
    print(f"report of a {args.steps}-step ALOHA insertion result, fresh process "
          f"({', '.join(reports['fixed'][0]['plots'])}):")
    for layout, runs in reports.items():
        print(f"  {layout:12s} wall {med(r['write_wall'] for r in runs):.3f} s  CPU "
              f"{med(r['write_cpu'] for r in runs):.3f} s  (matplotlib import {med(r['import_wall'] for r in runs):.3f}"
              " s wall)")
    print("exit of a process holding a run's modules (exit call to reaped):")
    for how, times in exits.items():
        print(f"  {how:12s} {med(times):.3f} s  ({', '.join(f'{t:.3f}' for t in times)})")


if __name__ == "__main__":
    main()
