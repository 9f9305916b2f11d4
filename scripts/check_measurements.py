"""Print the accuracy of replay-check's measurements on the shared samples (not a test; needs the datasets).

    python scripts/check_measurements.py [--root /work/shared/datasets] [--own DATASET ...] [--skip-meter]

- PushT frame-0 block pose vs pusht_truth.json: error (px of the 512 arena, deg), the estimator's 1-sigma
  and error / sigma (a calibrated 1-sigma gives |ratio| of order 1); the per-frame BlockMeter vs
  pusht_truth_traj.npz.
- ALOHA frame-0 object positions vs aloha_truth.json: error, 1-sigma, error / sigma.
- ALOHA per-frame ObjectMeter on a faithful replay: the recorded actions replayed from the true initial
  state, every recorded and re-rendered frame measured, |recorded - replayed| reading as the replay's
  object error reports it. Step 0 and the resting steps show the meter's own error (the replay starts
  where the recording did); later steps on the public samples also hold real physics differences
  (they were recorded on MuJoCo 2.3.7). `--own` adds datasets written by `replay-check record`
  (with environment_state: its row 0 is the truth), whose replay is exact, so every step is meter error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_aloha_estimator as aloha_check  # noqa: E402  (the sibling script's readers)

from replay_check.dataset import open_dataset  # noqa: E402
from replay_check.initial_state.aloha import ObjectMeter, estimate_aloha_objects  # noqa: E402
from replay_check.initial_state.pusht import estimate_pusht_initial_state  # noqa: E402
from replay_check.initial_state.pusht_track import BlockMeter  # noqa: E402
from replay_check.sims.aloha import AlohaAdapter  # noqa: E402
from replay_check.sims.base import InitialState, Pose  # noqa: E402
from replay_check.sims.pusht import PushTAdapter  # noqa: E402

PUSHT_KEY = "observation.image"
ALOHA_KEY = "observation.images.top"
RESTING_M = 0.005  # an object this close to its lowest height counts as resting on the table


def wrapped(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def pusht(root: Path, ratios: list[float]) -> None:
    truth = json.loads((root / "pusht_truth.json").read_text())["episodes"]
    traj = np.load(root / "pusht_truth_traj.npz")
    dataset = open_dataset(root=root / "pusht_sample")
    adapter = PushTAdapter("pusht", {"top": (96, 96)})
    print("PushT frame-0 block pose (px of the 512 arena, deg)")
    for i in range(dataset.meta.total_episodes):
        episode = dataset.episode(i)
        tx, ty, ta = truth[i]["initial_state"][2:]
        estimate = estimate_pusht_initial_state(episode.first_frame(PUSHT_KEY), episode.state[0], adapter)
        pose, sigma = estimate.objects["block"], estimate.uncertainty["block"]
        error = np.array([pose.position[0] - tx, pose.position[1] - ty, wrapped(pose.yaw - ta)])
        ratio = error / np.array([sigma.position[0], sigma.position[1], sigma.angle])
        ratios.extend(ratio.tolist())
        print(f"  ep {i}: position error {np.hypot(*error[:2]):.2f} px (dx {error[0]:+.2f}, dy {error[1]:+.2f}), "
              f"angle error {np.degrees(error[2]):+.2f} deg; 1-sigma {sigma.position[0]:.2f}/{sigma.position[1]:.2f}"
              f" px, {np.degrees(sigma.angle):.2f} deg; error/sigma {ratio[0]:+.2f} {ratio[1]:+.2f} {ratio[2]:+.2f}")
    print("PushT per-frame BlockMeter vs the true trajectory")
    for i in range(dataset.meta.total_episodes):
        episode = dataset.episode(i)
        meter, states = BlockMeter(), traj[f"ep{i}_state"]
        started = time.perf_counter()
        found = [meter.measure(frame) for frame in episode.cameras[PUSHT_KEY].iter_frames(0)]
        per_frame = 1000 * (time.perf_counter() - started) / len(found)
        pairs = list(zip(found, states[: len(found)], strict=True))
        pos = np.array([np.hypot(f[0] - s[2], f[1] - s[3]) if f else np.nan for f, s in pairs])
        ang = np.array([abs(np.degrees(wrapped(f[2] - s[4]))) if f else np.nan for f, s in pairs])
        print(f"  ep {i}: position median {np.nanmedian(pos):.2f} p95 {np.nanpercentile(pos, 95):.2f} max "
              f"{np.nanmax(pos):.2f} px; angle median {np.nanmedian(ang):.2f} p95 {np.nanpercentile(ang, 95):.2f} "
              f"max {np.nanmax(ang):.2f} deg; not seen {int(np.isnan(pos).sum())}; {per_frame:.2f} ms/frame")
    adapter.close()


def aloha_sources(root: Path, own: list[Path]) -> list[tuple[str, Path, str, dict, np.ndarray | None]]:
    """(label, folder, task, episode row, truth pose or None for environment_state) per ALOHA episode."""
    truth_all = json.loads((root / "aloha_truth.json").read_text())
    found = []
    for task, (folder_name, truth_key, _) in aloha_check.TASKS.items():
        for row in aloha_check.episode_rows(root / folder_name):
            truth = np.asarray(truth_all[truth_key][str(row["episode_index"])]["initial_object_pose"])
            found.append((f"{folder_name} ep {row['episode_index']}", root / folder_name, task, row, truth))
    for folder in own:
        rows = aloha_check.episode_rows(folder)
        env = aloha_check.rows_of(folder, rows[0], "observation.environment_state")
        task = "insertion" if env.shape[1] == 14 else "transfer_cube"  # two free joints, or one
        for row in rows:
            state0 = aloha_check.rows_of(folder, row, "observation.environment_state")[0]
            found.append((f"{folder.name} ep {row['episode_index']} (own)", folder, task, row, state0))
    return found


def aloha_estimates(sources, ratios: list[float]) -> None:
    print("ALOHA frame-0 object positions (mm)")
    for label, folder, task, row, truth in sources:
        adapter = AlohaAdapter(task, {"top": (480, 640)})
        colors = aloha_check.TASKS[task][2]
        state = aloha_check.rows_of(folder, row, "observation.state")
        estimate = estimate_aloha_objects(next(aloha_check.frames(folder, row)), state[0], adapter, colors=colors)
        parts = []
        for i, name in enumerate(adapter.object_names):
            error = estimate.objects[name].position[:2] - truth[7 * i : 7 * i + 2]
            sigma = estimate.uncertainty[name].position[:2]
            ratios.extend((error / sigma).tolist())
            parts.append(f"{name} error {1000 * np.linalg.norm(error):.2f} (1-sigma {1000 * sigma[0]:.2f}/"
                         f"{1000 * sigma[1]:.2f}, error/sigma {error[0] / sigma[0]:+.2f} {error[1] / sigma[1]:+.2f})")
        print(f"  {label}: " + "; ".join(parts))
        adapter.close()


def aloha_meter(sources) -> None:
    print("ALOHA ObjectMeter, recorded vs replayed frame, replay from the true initial state (mm)")
    for label, folder, task, row, truth in sources:
        adapter = AlohaAdapter(task, {"top": (480, 640)})
        meter = ObjectMeter(adapter, "top", 480, 640, aloha_check.TASKS[task][2])
        state, action = (aloha_check.rows_of(folder, row, c) for c in ("observation.state", "action"))
        objects = {n: Pose(truth[7 * i : 7 * i + 3], truth[7 * i + 3 : 7 * i + 7])
                   for i, n in enumerate(adapter.object_names)}
        adapter.restore(InitialState(robot=state[0], objects=objects, method="truth"))
        errors, heights = {n: [] for n in objects}, {n: [] for n in objects}
        gaps, spent = dict.fromkeys(objects, 0), 0.0
        for t, frame in enumerate(aloha_check.frames(folder, row)):
            if t > 0:
                adapter.step(action[t - 1])
            rendered = adapter.render("top")
            started = time.perf_counter()
            recorded, replayed = meter.measure(frame), meter.measure(rendered)
            spent += time.perf_counter() - started
            poses = adapter.object_poses()
            for name in objects:
                heights[name].append(poses[name].position[2])
                if recorded[name] is None or replayed[name] is None:
                    gaps[name] += 1
                    errors[name].append(np.nan)
                else:
                    errors[name].append(1000 * np.linalg.norm(recorded[name][:2] - replayed[name][:2]))
        steps = len(errors[adapter.object_names[0]])
        for name in objects:
            e, z = np.asarray(errors[name]), np.asarray(heights[name])
            resting = z < z.min() + RESTING_M
            print(f"  {label} {name:7s} step 0 {e[0]:.2f}; steps 0-49 median {np.nanmedian(e[:50]):.2f} max "
                  f"{np.nanmax(e[:50]):.2f}; resting (n={resting.sum()}) median {np.nanmedian(e[resting]):.2f} p95 "
                  f"{np.nanpercentile(e[resting], 95):.2f}; all median {np.nanmedian(e):.2f} p95 "
                  f"{np.nanpercentile(e, 95):.2f} max {np.nanmax(e):.2f} at step {int(np.nanargmax(e))}; "
                  f"not seen {gaps[name]} steps")
        print(f"  {label}: meter {1000 * spent / steps:.2f} ms per step (recorded + replayed frame)")
        adapter.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--own", type=Path, nargs="*", default=[],
                        help="ALOHA datasets from `replay-check record` (with environment_state)")
    parser.add_argument("--skip-meter", action="store_true", help="leave out the ALOHA per-frame meter")
    args = parser.parse_args()
    ratios: list[float] = []
    pusht(args.root, ratios)
    sources = aloha_sources(args.root, args.own)
    aloha_estimates(sources, ratios)
    r = np.abs(np.asarray(ratios))
    print(f"uncertainty calibration over {r.size} components: |error/sigma| median {np.median(r):.2f}, "
          f"RMS {np.sqrt(np.mean(r**2)):.2f}, max {r.max():.2f}; within 1 sigma {np.mean(r <= 1):.0%}, "
          f"within 2 {np.mean(r <= 2):.0%}")
    if not args.skip_meter:
        aloha_meter(sources)


if __name__ == "__main__":
    main()
