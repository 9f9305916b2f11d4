"""`replay-check run` against `lerobot-dataset-viz --save 1` on the same episode, whole processes (a benchmark).

    python scripts/benchmark_vs_viewer.py                       # records a 400-step ALOHA insertion episode first
    python scripts/benchmark_vs_viewer.py --root DATASET --episode 0 [--rounds 3] [--run-arg=--render-workers=0]
    python scripts/benchmark_vs_viewer.py --root DATASET --ours-only --breakdown   # replay-check alone, per process
    python scripts/benchmark_vs_viewer.py --root DATASET --ours-only --variant=--render-workers=1   # two set-ups
    python scripts/benchmark_vs_viewer.py --root DATASET --ours-only --against ../main-checkout     # before/after
    python scripts/benchmark_vs_viewer.py --root DATASET --floor    # also the render floor (scripts/render_floor.py)

The viewer only decodes the recorded frames and logs them; replay-check re-simulates, re-renders and compares every
frame and writes its report and Rerun recording. Both run as child processes, alternating (A B A B ...) so drift of
a shared machine hits both; the figures are per whole process tree: wall seconds, CPU seconds (the tree's user +
sys, from the kernel's accounting of reaped children), and peak memory (the largest sum of RSS over the tree, and
of PSS -- shared pages counted once -- sampled every 100 ms). The ratio is taken pair by pair and its median printed.
`lerobot-dataset-viz` must be on PATH or given with --viewer (lerobot needs torch: install it in another venv, e.g.
`nox -s vs_viewer`); its torchcodec needs a system FFmpeg. `--ours-only` runs replay-check alone (no viewer
needed); `--floor` adds scripts/render_floor.py (every frame rendered and nothing else, one process per core) as
another side, with the ratios to it; `--breakdown` also prints, for the sample nearest each run's tree PSS peak,
every process's PSS and RSS and its PSS by mapping kind (anonymous memory, shared-memory frame pools, the largest
libraries), read from the full /proc/PID/smaps at most once a second while a new peak is being reached.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_S = 0.1  # memory sampling period
BREAKDOWN_S = 1.0  # at most one full smaps read of the tree per second (it costs ~10 ms per process)


@dataclass
class Figures:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_pss_mb: float
    code: int
    breakdown: list[tuple[str, float, float, dict[str, float]]] | None = None  # (process, PSS, RSS, PSS by kind)


def _kind(path: str) -> str:
    """What a mapping in /proc/PID/smaps holds, coarsely: anon, shm (frame pools), a library's name, or file."""
    if path in ("", "[heap]") or path.startswith("[anon"):
        return "anon"
    if path.startswith("/dev/shm/") or "/psm_" in path or path.startswith("/memfd:"):
        return "shm"
    if path.startswith("["):
        return path  # [stack], [vdso], ...
    name = path.rsplit("/", 1)[-1].removesuffix(" (deleted)")
    return name.split(".so")[0] + ".so" if ".so" in name else "other files"


def _smaps_by_kind(pid: int) -> dict[str, float]:
    """PSS in MB of one process by mapping kind (a full /proc/PID/smaps read)."""
    kinds: dict[str, float] = {}
    kind = "anon"
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            head = line.split(None, 1)[0]
            if head.endswith(":"):
                if head == "Pss:":
                    kinds[kind] = kinds.get(kind, 0.0) + int(line.split()[1]) / 1024
            else:  # a mapping's first line: address range, perms, offset, device, inode, path
                parts = line.split(None, 5)
                kind = _kind(parts[5].strip() if len(parts) > 5 else "")
    return kinds


def _label(proc: psutil.Process, root: psutil.Process) -> str:
    if proc.pid == root.pid:
        return f"main {proc.pid}"
    try:
        command = proc.cmdline()
    except psutil.Error:
        return f"pid {proc.pid}"
    if "replay_check.worker" in command:
        return f"worker {proc.pid}"
    return f"{Path(command[0]).name if command else '?'} {proc.pid}"


def _tree_breakdown(root: psutil.Process) -> list[tuple[str, float, float, dict[str, float]]]:
    """(process, PSS, RSS, PSS by kind) of each process in the tree now; processes that end meanwhile are skipped."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    rows = []
    for proc in procs:
        try:
            kinds = _smaps_by_kind(proc.pid)
            rss, pss = _rollup(proc.pid)
        except (OSError, ValueError):
            continue
        rows.append((_label(proc, root), pss, rss, kinds))
    return rows


def _tree_memory(root: psutil.Process) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over a process and its descendants; processes that end meanwhile are skipped.

    Read from /proc/PID/smaps_rollup (one pass over the kernel's totals), not psutil's memory_full_info,
    which parses the whole smaps file: for a 2 GB process that cost a third of a core at this sampling rate,
    taken from whichever side was being measured.
    """
    rss = pss = 0.0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0
    for proc in procs:
        try:
            one_rss, one_pss = _rollup(proc.pid)
        except (OSError, ValueError):
            continue
        rss += one_rss
        pss += one_pss
    return rss, pss


def _rollup(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB of one process from /proc/PID/smaps_rollup."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        fields = dict(line.split(":", 1) for line in rollup if line[:4] in ("Rss:", "Pss:"))
    return int(fields.get("Rss", "0 kB").split()[0]) / 1024, int(fields.get("Pss", "0 kB").split()[0]) / 1024


def measure(command: list[str], log: Path, breakdown: bool = False, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Figures:
    """Run one command to the end, sampling its tree's memory; CPU from the kernel's accounting of children.

    With `breakdown`, the tree's full smaps are read when a sample reaches a new PSS peak (at most once per
    BREAKDOWN_S), so the breakdown kept is the one nearest the peak.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        peaks = [0.0, 0.0]
        kept: list = [None, 0.0]  # (breakdown, tree PSS when it was read)
        done = threading.Event()

        def sample() -> None:
            ps = psutil.Process(proc.pid)
            last = 0.0
            while not done.is_set():
                rss, pss = _tree_memory(ps)
                peaks[0], peaks[1] = max(peaks[0], rss), max(peaks[1], pss)
                if breakdown and pss >= kept[1] and time.monotonic() - last >= BREAKDOWN_S:
                    rows = _tree_breakdown(ps)
                    last = time.monotonic()
                    if rows:
                        kept[0], kept[1] = rows, sum(row[1] for row in rows)
                done.wait(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Figures(wall, cpu, peaks[0], peaks[1], code, kept[0])


def _print_breakdown(rows: list[tuple[str, float, float, dict[str, float]]], top: int = 6) -> None:
    """One line per process: PSS, RSS, then its PSS by mapping kind, largest first."""
    pss_sum, rss_sum = sum(row[1] for row in rows), sum(row[2] for row in rows)
    print(f"  per process near the peak (tree PSS {pss_sum:.0f} MB, RSS {rss_sum:.0f} MB):")
    for label, pss, rss, kinds in rows:
        parts = sorted(kinds.items(), key=lambda item: -item[1])
        shown = ", ".join(f"{kind} {mb:.0f}" for kind, mb in parts[:top])
        rest = sum(mb for _, mb in parts[top:])
        print(f"    {label:<14} PSS {pss:6.0f} MB  RSS {rss:6.0f} MB   [{shown}, rest {rest:.0f}]")


def _record(work: Path) -> Path:
    from replay_check.record import record_dataset

    root = work / "aloha_insertion"
    record_dataset("aloha-insertion", 1, root, seed=0, env_state=False, progress=False)
    return root


def _versions(viewer: str | None) -> str:
    """Versions on both sides; the viewer's are asked of the Python next to its script (its own venv)."""
    from importlib import metadata

    ours = ", ".join(f"{name} {metadata.version(name)}" for name in ("replay-check", "mujoco", "rerun-sdk"))
    if viewer is None:
        return ours
    python = Path(viewer).with_name("python")
    ask = "from importlib.metadata import version as v; print('lerobot', v('lerobot'), 'rerun-sdk', v('rerun-sdk'))"
    try:
        theirs = subprocess.run([str(python), "-c", ask], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        theirs = "viewer versions unknown"
    return f"{ours}; viewer: {theirs}"


def _row(name: str, values: list[float], unit: str) -> str:
    return (f"  {name:<16} median {statistics.median(values):8.2f} {unit}   "
            f"(min {min(values):.2f}, max {max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="dataset (default: record one 400-step ALOHA insertion episode)")
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="counted runs of each, after one warm-up of each")
    parser.add_argument("--viewer", default=shutil.which("lerobot-dataset-viz"), help="path of lerobot-dataset-viz")
    parser.add_argument("--run-arg", action="append", default=[], help="extra argument for `replay-check run`")
    parser.add_argument("--ours-only", action="store_true", help="run replay-check alone (no viewer needed)")
    parser.add_argument("--breakdown", action="store_true", help="per-process memory by mapping kind at the peak")
    parser.add_argument("--variant", action="append", default=[], metavar="ARGS",
                        help="also run `replay-check run` with these extra arguments (space-separated), alternating "
                             "with the others, e.g. --variant=--render-workers=1")
    parser.add_argument("--floor", action="store_true",
                        help="also time scripts/render_floor.py: every frame rendered, nothing else (the lower bound)")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="also run another checkout of replay-check (PYTHONPATH=CHECKOUT, e.g. a git worktree "
                             "of main), alternating with this one: before/after figures from one run")
    args = parser.parse_args()
    if not args.viewer and not args.ours_only:
        sys.exit("lerobot-dataset-viz not found: pass --viewer PATH (see the docstring) or --ours-only")
    work = Path(tempfile.mkdtemp(prefix="replay-check-vs-viewer-"))
    root = (args.root or _record(work)).resolve()
    ours = [sys.executable, "-m", "replay_check", "run", "--root", str(root), "--episode", str(args.episode),
            "--report-dir", str(work / "reports"), "--quiet", *args.run_arg]
    viewer = [args.viewer, "--repo-id", "local/benchmark", "--root", str(root), "--episode-index",
              str(args.episode), "--save", "1", "--output-dir", str(work / "viewer")]
    sides = [("replay-check run", ours)] + ([] if args.ours_only else [("lerobot-dataset-viz", viewer)])
    sides += [(f"replay-check run {variant}", [*ours, *variant.split()]) for variant in args.variant]
    # Each replay-check side imports the checkout it names from a neutral directory: `python -m` puts the
    # working directory first on sys.path, so run from a checkout both sides would import that checkout.
    this_checkout = Path(__file__).resolve().parents[1]
    envs = {name: {**os.environ, "PYTHONPATH": str(this_checkout)} for name, _ in sides if name.startswith("replay")}
    if args.floor:
        floor = [sys.executable, str(this_checkout / "scripts" / "render_floor.py"), "--root", str(root),
                 "--episode", str(args.episode)]
        sides.append(("render floor", floor))
        envs["render floor"] = {**os.environ, "PYTHONPATH": str(this_checkout)}
    if args.against:
        envs["replay-check run (against)"] = {**os.environ, "PYTHONPATH": str(args.against.resolve())}
        sides.append(("replay-check run (against)", ours))
    versions = _versions(None if args.ours_only else args.viewer)
    env_note = f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')}, {os.cpu_count()} CPUs, {versions}"
    print(f"dataset {root} episode {args.episode}; {env_note}; logs in {work}")
    results: dict[str, list[Figures]] = {name: [] for name, _ in sides}
    for round_ in range(args.rounds + 1):
        for name, command in sides:
            figures = measure(command, work / f"{name.split()[0]}.log", breakdown=args.breakdown, env=envs.get(name),
                              cwd=work)
            if figures.code not in (0, 1):
                sys.exit(f"{name} exited {figures.code}; see {work}")
            if round_:  # the first round warms caches and is not counted
                results[name].append(figures)
    for name, runs in results.items():
        print(name)
        print(_row("wall", [r.wall_s for r in runs], "s"))
        print(_row("cpu", [r.cpu_s for r in runs], "s"))
        print(_row("cpu / wall", [r.cpu_s / r.wall_s for r in runs], ""))
        print(_row("peak RSS (tree)", [r.peak_rss_mb for r in runs], "MB"))
        print(_row("peak PSS (tree)", [r.peak_pss_mb for r in runs], "MB"))
        if args.breakdown:
            median_run = sorted(runs, key=lambda r: r.peak_pss_mb)[len(runs) // 2]
            if median_run.breakdown:
                _print_breakdown(median_run.breakdown)
    others = [f"replay-check run {variant}" for variant in args.variant]
    others += ["replay-check run (against)"] if args.against else []
    others += ["render floor"] if args.floor else []
    for other in others:
        pairs = zip(results["replay-check run"], results[other], strict=True)
        ratios = [a.wall_s / b.wall_s for a, b in pairs]
        print(f"wall ratio replay-check run / {other}, pair by pair: median {statistics.median(ratios):.2f}x "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    if args.ours_only:
        return
    _print_ratio(results, "replay-check run", "lerobot-dataset-viz", "replay-check / viewer")
    if args.floor:
        _print_ratio(results, "render floor", "lerobot-dataset-viz", "render floor / viewer")


def _print_ratio(results: dict[str, list[Figures]], top: str, bottom: str, label: str) -> None:
    ratios = [a.wall_s / b.wall_s for a, b in zip(results[top], results[bottom], strict=True)]
    print(f"wall ratio {label}, pair by pair: median {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
