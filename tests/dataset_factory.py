"""Tiny synthetic LeRobot datasets (v3.0 and v2.1) for tests: parquet rows and short mp4s via PyAV.

Every value is a known function of (episode, row) so tests can check what a reader returns
without storing expected data: numeric features via `feature_value`, frames via `frame_value`
(a uniform colour, which survives lossy coding within a few levels).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_FEATURES: dict[str, Any] = {"observation.state": (2,), "action": (2,)}


def feature_value(feature_number: int, episode: int, row: int, width: int) -> np.ndarray:
    """The float32 value of numeric feature number `feature_number` (order of `features`) at a row."""
    return (100.0 * episode + row + 0.1 * np.arange(width) + 0.01 * feature_number).astype(np.float32)


def frame_value(episode: int, row: int) -> int:
    """The grey level of camera frames at (episode, row); consecutive rows differ by 12 levels."""
    return (60 * episode + 12 * row + 16) % 224 + 16


def make_frame(episode: int, row: int, height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), frame_value(episode, row), dtype=np.uint8)


def write_dataset(
    root: str | Path,
    *,
    version: str = "v3.0",
    fps: int = 10,
    lengths: Sequence[int] = (6, 4),
    features: dict[str, Any] | None = None,
    video_key: str | None = None,
    image_key: str | None = None,
    image_size: tuple[int, int] = (32, 48),
    episodes_per_file: int | None = None,
    tasks: Sequence[str] = ("Push the block.",),
    robot_type: str | None = "test_robot",
    codec: str = "libx264",
    gop: int = 4,
    drop_video_frames: Iterable[tuple[int, int]] = (),
    names: Any = None,
) -> Path:
    """Write a dataset under `root` and return it.

    features: key -> shape (float32) or a full info.json spec {"dtype", "shape", "names"}; bool
    features are True on an episode's last row. Episode e uses task tasks[e % len(tasks)].
    episodes_per_file (v3.0): episodes per data parquet and per mp4 (default: all in one).
    drop_video_frames: (episode, row) pairs left out of the mp4 (later frames keep their times),
    to make videos that jump or end early. names: `names` given to state and action.
    """
    root = Path(root)
    specs = _feature_specs(features or DEFAULT_FEATURES, names)
    if video_key:
        specs[video_key] = _camera_spec("video", image_size, fps, codec, version)
    if image_key:
        specs[image_key] = _camera_spec("image", image_size, fps, codec, version)
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        specs[key] = {"dtype": "float32" if key == "timestamp" else "int64", "shape": [1], "names": None}
    episodes = [
        _episode_rows(e, n, specs, fps, len(tasks), image_key, image_size) for e, n in enumerate(lengths)
    ]
    start = 0
    for rows in episodes:
        rows["index"] = list(range(start, start + len(rows["index"])))
        start += len(rows["index"])
    dropped = set(drop_video_frames)
    writer = _write_v3 if version == "v3.0" else _write_v2
    writer(
        root,
        specs,
        episodes,
        list(lengths),
        list(tasks),
        fps,
        video_key,
        image_size,
        codec,
        gop,
        dropped,
        episodes_per_file or max(1, len(lengths)),
    )
    info = {
        "codebase_version": version,
        "robot_type": robot_type,
        "total_episodes": len(lengths),
        "total_frames": int(sum(lengths)),
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "fps": fps,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": _DATA_PATH[version == "v3.0"],
        "video_path": _VIDEO_PATH[version == "v3.0"] if video_key else None,
        "features": specs,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return root


_DATA_PATH = {
    True: "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
    False: "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
}
_VIDEO_PATH = {
    True: "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    False: "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
}


def _feature_specs(features: dict[str, Any], names: Any) -> dict[str, dict]:
    specs = {}
    for key, spec in features.items():
        if not isinstance(spec, dict):
            spec = {"dtype": "float32", "shape": list(spec), "names": None}
            if key in ("observation.state", "action") and names is not None:
                spec["names"] = names
        specs[key] = {"names": None, **spec, "shape": list(spec["shape"])}
    return specs


def _camera_spec(dtype: str, size: tuple[int, int], fps: int, codec: str, version: str) -> dict:
    spec: dict[str, Any] = {
        "dtype": dtype,
        "shape": [size[0], size[1], 3],
        "names": ["height", "width", "channel"],
    }
    if dtype == "video":
        block = {
            "video.height": size[0],
            "video.width": size[1],
            "video.codec": codec,
            "video.pix_fmt": "yuv420p",
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        }
        spec["info" if version == "v3.0" else "video_info"] = block
    return spec


def _episode_rows(
    episode: int,
    length: int,
    specs: dict[str, dict],
    fps: int,
    n_tasks: int,
    image_key: str | None,
    image_size: tuple[int, int],
) -> dict[str, list]:
    rows: dict[str, list] = {}
    numeric = [k for k, s in specs.items() if s["dtype"] not in ("video", "image") and k not in _BOOKKEEPING]
    for number, key in enumerate(numeric):
        spec = specs[key]
        if spec["dtype"] == "bool":
            values: list = [row == length - 1 for row in range(length)]
        else:
            width = int(np.prod(spec["shape"]))
            values = [
                feature_value(number, episode, row, width).astype(spec["dtype"]) for row in range(length)
            ]
            values = [v[0].item() if spec["shape"] == [1] else v.tolist() for v in values]
        rows[key] = values
    if image_key:
        rows[image_key] = [
            {"bytes": _png(make_frame(episode, r, *image_size)), "path": None} for r in range(length)
        ]
    rows["timestamp"] = [np.float32(r / fps).item() for r in range(length)]
    rows["frame_index"] = list(range(length))
    rows["episode_index"] = [episode] * length
    rows["index"] = [0] * length
    rows["task_index"] = [episode % n_tasks] * length
    return rows


_BOOKKEEPING = {"timestamp", "frame_index", "episode_index", "index", "task_index"}


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def _arrow_table(rows: dict[str, list], specs: dict[str, dict]) -> pa.Table:
    columns = {}
    for key, values in rows.items():
        spec = specs[key]
        if spec["dtype"] == "image":
            kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        elif spec["shape"] == [1]:
            kind = pa.from_numpy_dtype(np.dtype(spec["dtype"]))
        else:
            kind = pa.list_(pa.from_numpy_dtype(np.dtype(spec["dtype"])), int(np.prod(spec["shape"])))
        columns[key] = pa.array(values, type=kind)
    return pa.table(columns)


def _concat(episodes: list[dict[str, list]]) -> dict[str, list]:
    return {key: [v for ep in episodes for v in ep[key]] for key in episodes[0]}


def _write_v3(
    root, specs, episodes, lengths, tasks, fps, video_key, size, codec, gop, dropped, per_file
) -> None:
    meta_rows = []
    for file_index, first in enumerate(range(0, len(episodes), per_file)):
        group = list(range(first, min(first + per_file, len(episodes))))
        data = root / _DATA_PATH[True].format(chunk_index=0, file_index=file_index)
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_arrow_table(_concat([episodes[e] for e in group]), specs), data)
        if video_key:
            video = root / _VIDEO_PATH[True].format(video_key=video_key, chunk_index=0, file_index=file_index)
            write_video(video, [(e, lengths[e]) for e in group], fps, size, codec, gop, dropped)
        offset = 0
        for e in group:
            row = {
                "episode_index": e,
                "tasks": [tasks[e % len(tasks)]],
                "length": lengths[e],
                "data/chunk_index": 0,
                "data/file_index": file_index,
                "dataset_from_index": episodes[e]["index"][0] if lengths[e] else 0,
                "dataset_to_index": episodes[e]["index"][0] + lengths[e] if lengths[e] else 0,
            }
            if video_key:
                prefix = f"videos/{video_key}/"
                row |= {
                    prefix + "chunk_index": 0,
                    prefix + "file_index": file_index,
                    prefix + "from_timestamp": offset / fps,
                    prefix + "to_timestamp": (offset + lengths[e]) / fps,
                }
            offset += lengths[e]
            meta_rows.append(row)
    episodes_meta = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    episodes_meta.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(meta_rows), episodes_meta)
    pq.write_table(
        pa.table(
            {
                "task_index": pa.array(range(len(tasks)), type=pa.int64()),
                "__index_level_0__": pa.array(list(tasks), type=pa.large_string()),
            }
        ),
        root / "meta" / "tasks.parquet",
    )


def _write_v2(
    root, specs, episodes, lengths, tasks, fps, video_key, size, codec, gop, dropped, per_file
) -> None:
    (root / "meta").mkdir(parents=True, exist_ok=True)
    for e, rows in enumerate(episodes):
        data = root / _DATA_PATH[False].format(episode_chunk=0, episode_index=e)
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_arrow_table(rows, specs), data)
        if video_key:
            video = root / _VIDEO_PATH[False].format(episode_chunk=0, video_key=video_key, episode_index=e)
            write_video(video, [(e, lengths[e])], fps, size, codec, gop, dropped)
    lines = [
        json.dumps({"episode_index": e, "tasks": [tasks[e % len(tasks)]], "length": n})
        for e, n in enumerate(lengths)
    ]
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    (root / "meta" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(tasks))
    )


def write_video(
    path: str | Path,
    segments: Sequence[tuple[int, int]],
    fps: int,
    size: tuple[int, int],
    codec: str = "libx264",
    gop: int = 4,
    dropped: set[tuple[int, int]] | None = None,
) -> Path:
    """An mp4 holding `segments` [(episode, length), ...] back to back; frame n is shown at n / fps."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"g": str(gop), "bf": "0"} if codec == "libx264" else {}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        n = 0
        for episode, length in segments:
            for row in range(length):
                if (episode, row) not in (dropped or set()):
                    frame = av.VideoFrame.from_ndarray(make_frame(episode, row, *size), format="rgb24")
                    frame.pts = n  # in the encoder's 1/fps time base
                    container.mux(stream.encode(frame))
                n += 1
        container.mux(stream.encode(None))
    return path
