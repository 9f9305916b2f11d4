"""Check that lerobot itself loads a dataset written by replay-check's writer, and reads what pyarrow reads.

Run it in a venv that has lerobot installed (not the replay-check venv; it needs torch):

    /work/venv-lerobot/bin/python scripts/check_lerobot_compat.py DATASET_ROOT [--rows 0,17,-1]

It loads DATASET_ROOT with `LeRobotDataset("local/x", root=DATASET_ROOT)` and checks: frame and episode
counts against the parquet files, numeric columns of some rows (each episode's first and last row plus
--rows) equal to what pyarrow reads, task strings, and that each camera frame lerobot decodes matches the
frame PyAV decodes at that row's place in the mp4. Prints one line per check; exit status 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq


class Checker:
    """Collects pass/fail lines so one run reports every mismatch, not just the first."""

    def __init__(self) -> None:
        self.failures = 0

    def check(self, ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + what)
        self.failures += 0 if ok else 1


def read_tables(root: Path) -> tuple[dict, list[dict], dict[str, np.ndarray]]:
    """info.json, the episodes rows and the data columns, straight from the files."""
    info = json.loads((root / "meta/info.json").read_text())
    episodes = []
    for path in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet")):
        episodes += pq.read_table(path).to_pylist()
    data: dict[str, list] = {}
    for path in sorted((root / "data").glob("chunk-*/file-*.parquet")):
        for key, values in pq.read_table(path).to_pydict().items():
            data.setdefault(key, []).extend(values)
    return info, episodes, {k: np.asarray(v) for k, v in data.items()}


def frame_positions(episodes: list[dict], camera: str) -> dict[int, int]:
    """Episode index -> position of its first frame in its mp4, from episode lengths alone.

    Deliberately not from `from_timestamp`: lerobot seeks by that column, so the reference must not.
    """
    positions, seen = {}, {}
    for episode in sorted(episodes, key=lambda e: e["episode_index"]):
        file = (episode[f"videos/{camera}/chunk_index"], episode[f"videos/{camera}/file_index"])
        positions[episode["episode_index"]] = seen.get(file, 0)
        seen[file] = seen.get(file, 0) + episode["length"]
    return positions


def reference_frames(
    root: Path, info: dict, episode: dict, camera: str, positions: set[int]
) -> dict[int, tuple]:
    """Frames at `positions` of the episode's mp4, decoded by PyAV: position -> (time, HxWx3 uint8)."""
    chunk = episode[f"videos/{camera}/chunk_index"]
    file = episode[f"videos/{camera}/file_index"]
    path = root / info["video_path"].format(video_key=camera, chunk_index=chunk, file_index=file)
    found = {}
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(container.streams.video[0])):
            if n in positions:
                found[n] = (float(frame.time), frame.to_ndarray(format="rgb24"))
            if n >= max(positions):
                break
    return found


def check_camera(
    result: Checker, root: Path, info: dict, episodes: list[dict], camera: str, items: dict
) -> None:
    """lerobot's decoded frame for each row equals the PyAV frame at the row's position in the mp4."""
    by_index = {e["episode_index"]: e for e in episodes}
    starts = frame_positions(episodes, camera)
    for row, item in items.items():
        episode = by_index[int(item["episode_index"])]
        position = starts[episode["episode_index"]] + int(item["frame_index"])
        time, want = reference_frames(root, info, episode, camera, {position})[position]
        expected_time = episode[f"videos/{camera}/from_timestamp"] + int(item["frame_index"]) / info["fps"]
        result.check(
            abs(time - expected_time) < 1e-4,
            f"row {row} {camera}: mp4 frame {position} shown at "
            f"{time:.4f} s, from_timestamp + frame_index / fps = {expected_time:.4f} s",
        )
        image = (item[camera].numpy().transpose(1, 2, 0) * 255).round()
        error = float(np.abs(image - want).mean()) if image.shape == want.shape else float("inf")
        result.check(
            error < 0.5,
            f"row {row} {camera}: shape {image.shape}, "
            f"mean abs diff to PyAV frame {position}: {error:.3f}/255",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--rows", default="", help="extra global row indices to compare, e.g. 0,17,-1")
    parser.add_argument("--video-backend", default="pyav", help="lerobot video backend (pyav or torchcodec)")
    args = parser.parse_args()

    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = args.root.resolve()
    info, episodes, data = read_tables(root)
    dataset = LeRobotDataset("local/x", root=root, video_backend=args.video_backend)
    print(f"lerobot {lerobot.__version__}: loaded {root}")
    result = Checker()
    total = len(data["index"])
    result.check(
        dataset.num_frames == total == info["total_frames"],
        f"frames: lerobot {dataset.num_frames}, parquet {total}, info.json {info['total_frames']}",
    )
    result.check(
        dataset.num_episodes == len(episodes) == info["total_episodes"],
        f"episodes: lerobot "
        f"{dataset.num_episodes}, meta/episodes {len(episodes)}, info.json {info['total_episodes']}",
    )

    rows = {e["dataset_from_index"] for e in episodes} | {e["dataset_to_index"] - 1 for e in episodes}
    rows |= {int(r) % total for r in args.rows.split(",") if r.strip()}
    cameras = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    tasks_by_index = {e["episode_index"]: e["tasks"] for e in episodes}
    items = {}
    for row in sorted(rows):
        try:
            item = dataset[row]
        except Exception as error:  # lerobot refusing a row is a failed check, not a crash of the checker
            result.check(False, f"row {row}: lerobot raised {type(error).__name__}: {error}")
            continue
        for key in (k for k, f in info["features"].items() if f["dtype"] != "video" and k in data):
            got = np.asarray(item[key].numpy()).reshape(-1)
            want = np.asarray(data[key][row]).reshape(-1).astype(got.dtype)
            result.check(
                np.array_equal(got, want), f"row {row} {key}: lerobot {got[:4]} vs parquet {want[:4]}"
            )
        episode_index = int(data["episode_index"][row])
        result.check(item["task"] in tasks_by_index[episode_index], f"row {row} task {item['task']!r}")
        items[row] = item
    for camera in cameras:
        check_camera(result, root, info, episodes, camera, items)
    print(f"{result.failures} failed" if result.failures else "all checks passed")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
