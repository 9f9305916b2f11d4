"""Run the ALOHA frame-0 object estimator on the shared sample datasets and print its errors vs truth.

Not a test: it needs /work/shared/datasets (LeRobot v3.0 samples with aloha_truth.json). With --meter it
also runs ObjectMeter over every recorded frame of each episode and prints how often objects are seen.

    python scripts/check_aloha_estimator.py [--root /work/shared/datasets] [--meter]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from replay_check.initial_state.aloha import ObjectMeter, estimate_aloha_objects
from replay_check.sims.aloha import AlohaAdapter
from replay_check.sims.base import InitialState, Pose

CAMERA_KEY = "observation.images.top"
# adapter task -> (sample folder, key in aloha_truth.json, object colours as the profiles give them)
TASKS = {
    "insertion": (
        "aloha_sim_insertion_scripted_sample",
        "sim_insertion_scripted",
        {"peg": "red", "socket": "blue"},
    ),
    "transfer_cube": (
        "aloha_sim_transfer_cube_scripted_sample",
        "sim_transfer_cube_scripted",
        {"cube": "red"},
    ),
}


def episode_rows(folder: Path) -> list[dict]:
    table = pq.read_table(folder / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    return sorted(table, key=lambda row: row["episode_index"])


def frames(folder: Path, row: dict) -> Iterator[np.ndarray]:
    """Decoded frames of one episode's segment, starting at its from_timestamp."""
    prefix = f"videos/{CAMERA_KEY}/"
    chunk, file = row[prefix + "chunk_index"], row[prefix + "file_index"]
    path = folder / "videos" / CAMERA_KEY / f"chunk-{chunk:03d}" / f"file-{file:03d}.mp4"
    start, stop = row[prefix + "from_timestamp"], row[prefix + "to_timestamp"]
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            if frame.time < start - 1e-4:
                continue
            if frame.time >= stop - 1e-4:
                return
            yield frame.to_ndarray(format="rgb24")


def rows_of(folder: Path, row: dict, column: str) -> np.ndarray:
    """One column's rows of one episode, in index order."""
    data = pq.read_table(folder / "data/chunk-000/file-000.parquet", columns=["index", column])
    index = np.asarray(data.column("index").to_pylist())
    values = np.asarray(data.column(column).to_pylist())
    keep = (index >= row["dataset_from_index"]) & (index < row["dataset_to_index"])
    return values[keep][np.argsort(index[keep])]


def check_episode(
    adapter: AlohaAdapter, folder: Path, row: dict, truth: np.ndarray, colors: dict[str, str], meter: bool
) -> None:
    episode = row["episode_index"]
    state = rows_of(folder, row, "observation.state")
    frame0 = next(frames(folder, row))
    started = time.perf_counter()
    estimate = estimate_aloha_objects(frame0, state[0], adapter, camera="top", colors=colors)
    elapsed = time.perf_counter() - started
    for i, name in enumerate(adapter.object_names):
        true_xy = truth[7 * i : 7 * i + 2]
        coarse = np.asarray(estimate.details[name]["coarse_position"][:2])
        refined = estimate.objects[name].position[:2]
        sigma = estimate.uncertainty[name].position[:2] if name in estimate.uncertainty else np.full(2, np.nan)
        ratio = (refined - true_xy) / sigma
        print(
            f"  ep {episode} {name:7s} coarse err {1000 * np.linalg.norm(coarse - true_xy):5.2f} mm  "
            f"refined err {1000 * np.linalg.norm(refined - true_xy):5.2f} mm  "
            f"moves {estimate.details[name]['iterations']}  1-sigma x/y {1000 * sigma[0]:.2f}/{1000 * sigma[1]:.2f} mm"
            f"  error/sigma x {ratio[0]:+.2f} y {ratio[1]:+.2f}"
        )
    renders = estimate.details[adapter.object_names[0]]["renders"]
    print(f"  ep {episode} residual {estimate.residual:.3f}/255  renders {renders}  {elapsed:.2f} s")
    if meter:
        run_meter(adapter, folder, row, colors, truth)


def replayed_positions(adapter: AlohaAdapter, folder: Path, row: dict, truth: np.ndarray) -> np.ndarray:
    """(T, objects, 3) object positions when the recorded actions are replayed from the true start."""
    state, action = rows_of(folder, row, "observation.state"), rows_of(folder, row, "action")
    objects = {
        name: Pose(truth[7 * i : 7 * i + 3], truth[7 * i + 3 : 7 * i + 7])
        for i, name in enumerate(adapter.object_names)
    }
    adapter.restore(InitialState(robot=state[0], objects=objects, method="truth"))
    positions = []
    for act in action:
        positions.append([pose.position for pose in adapter.object_poses().values()])
        adapter.step(act)
    return np.asarray(positions)


def run_meter(
    adapter: AlohaAdapter, folder: Path, row: dict, colors: dict[str, str], truth: np.ndarray
) -> None:
    """How often ObjectMeter sees each object, and how far it reads from a replay started at the truth.

    The replay tracks the recording to within millimetres while objects rest (it may drift later), so
    the error split by height shows the resting-plane assumption's cost once an object is lifted.
    """
    first = next(frames(folder, row))
    meter = ObjectMeter(adapter, "top", first.shape[0], first.shape[1], colors)
    readings = [meter.measure(frame) for frame in frames(folder, row)]
    replayed = replayed_positions(adapter, folder, row, truth)
    for i, name in enumerate(adapter.object_names):
        seen = [r[name] for r in readings]
        missing = [t for t, p in enumerate(seen) if p is None]
        points = np.array([p if p is not None else [np.nan] * 3 for p in seen])
        error = 1000 * np.linalg.norm(points[:, :2] - replayed[: len(points), i, :2], axis=1)
        rest_z = np.nanmin(points[:, 2])
        height = replayed[: len(points), i, 2] - rest_z
        resting, lifted = (height < 0.005) & (np.arange(len(points)) >= 10), height > 0.02
        print(
            f"    meter {name:7s} seen {len(seen) - len(missing)}/{len(seen)} frames "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}); error vs replay: resting "
            f"median {np.nanmedian(error[resting]):.1f} mm (n={resting.sum()}), lifted >2 cm "
            f"median {np.nanmedian(error[lifted]) if lifted.any() else float('nan'):.1f} mm "
            f"(n={lifted.sum()}), max {np.nanmax(error):.1f} mm at frame {int(np.nanargmax(error))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--meter", action="store_true", help="also run ObjectMeter over every recorded frame")
    args = parser.parse_args()
    truth_all = json.loads((args.root / "aloha_truth.json").read_text())
    for task, (folder_name, truth_key, colors) in TASKS.items():
        folder = args.root / folder_name
        adapter = AlohaAdapter(task)
        print(task)
        for row in episode_rows(folder):
            truth = np.asarray(truth_all[truth_key][str(row["episode_index"])]["initial_object_pose"])
            check_episode(adapter, folder, row, truth, colors, args.meter)
        adapter.close()


if __name__ == "__main__":
    main()
