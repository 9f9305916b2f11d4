"""Write LeRobot v3.0 datasets (what `replay-check record` produces).

Layout and fields follow what lerobot's own writer emits, so `LeRobotDataset(repo_id, root=...)` loads
the result: one data parquet and one mp4 per camera for all episodes (a single chunk/file), per-episode
rows and stats in meta/episodes, aggregated stats in meta/stats.json. Everything is written into a hidden
folder next to `root` and renamed into place by `finalize`, so a crash never leaves a folder that looks
like a dataset.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from replay_check.dataset.encode import VideoEncoder, video_info
from replay_check.errors import DatasetError, OutputError
from replay_check.outputs import check_output_dir

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
NUMERIC_DTYPES = {
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "bool": pa.bool_(),
}
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


# ---------------------------------------------------------------------------------------------- stats (pure)


def _quantile_key(q: float) -> str:
    return f"q{round(q * 100):02d}"


def numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dimension min/max/mean/std/count/quantiles of an (N, D) array, as lerobot stores them."""
    as_float = values.astype(np.float64)
    stats = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": as_float.mean(axis=0),
        "std": as_float.std(axis=0),
        "count": np.array([values.shape[0]], dtype=np.int64),
    }
    for q in QUANTILES:
        stats[_quantile_key(q)] = np.quantile(as_float, q, axis=0)
    return stats


def image_histogram(frame: np.ndarray) -> np.ndarray:
    """(3, 256) per-channel counts of an HxWx3 uint8 frame: exact image stats without keeping frames."""
    flat = frame.reshape(-1, 3).astype(np.int64) + np.array([0, 256, 512])
    return np.bincount(flat.ravel(), minlength=768).reshape(3, 256)


def image_stats(histogram: np.ndarray, n_frames: int) -> dict[str, np.ndarray]:
    """Per-channel stats in [0, 1], shaped (3, 1, 1) as lerobot stores them, from summed histograms."""
    levels = np.arange(256) / 255.0
    totals = histogram.sum(axis=1)
    mean = histogram @ levels / totals
    var = histogram @ levels**2 / totals - mean**2
    present = histogram > 0
    cdf = np.cumsum(histogram, axis=1) / totals[:, None]
    stats = {
        "min": levels[present.argmax(axis=1)],
        "max": levels[255 - present[:, ::-1].argmax(axis=1)],
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
    }
    stats = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
    stats["count"] = np.array([n_frames], dtype=np.int64)
    for q in QUANTILES:
        stats[_quantile_key(q)] = levels[(cdf >= q).argmax(axis=1)].reshape(3, 1, 1)
    return stats


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset stats from episode stats: exact min/max/mean/std, count-weighted mean of quantiles."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    weights = counts / counts.sum()
    means = np.stack([s["mean"] for s in per_episode])
    stds = np.stack([s["std"] for s in per_episode])
    w = weights.reshape((-1,) + (1,) * (means.ndim - 1))
    mean = (w * means).sum(axis=0)
    var = (w * (stds**2 + (means - mean) ** 2)).sum(axis=0)
    out = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(counts.sum())], dtype=np.int64),
    }
    for q in QUANTILES:
        key = _quantile_key(q)
        out[key] = (w * np.stack([s[key] for s in per_episode])).sum(axis=0)
    return out


def _jsonable(stats: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


# ---------------------------------------------------------------------------------------------- features


def _check_features(features: dict[str, dict]) -> dict[str, dict]:
    """Validate user features and complete video entries (names, info block) the way lerobot writes them."""
    if not features:
        raise DatasetError("features is empty; expected at least one feature such as observation.state")
    out: dict[str, dict] = {}
    for key, spec in features.items():
        if key in INDEX_FEATURES:
            raise DatasetError(
                f"feature {key!r} is reserved; the writer adds {', '.join(INDEX_FEATURES)} itself"
            )
        dtype = spec.get("dtype")
        shape = [int(n) for n in spec.get("shape", ())]
        if dtype == "video":
            if len(shape) != 3 or shape[2] != 3:
                raise DatasetError(f"video feature {key!r} has shape {shape}; expected [height, width, 3]")
            out[key] = {
                "dtype": "video",
                "shape": shape,
                "names": spec.get("names") or ["height", "width", "channel"],
            }
        elif dtype in NUMERIC_DTYPES:
            if len(shape) != 1 or shape[0] < 1:
                raise DatasetError(f"feature {key!r} has shape {shape}; expected a 1-d shape like [14]")
            out[key] = {"dtype": dtype, "shape": shape, "names": spec.get("names")}
        else:
            raise DatasetError(
                f"feature {key!r} has dtype {dtype!r}; expected video or one of {sorted(NUMERIC_DTYPES)}"
            )
    return out


def _arrow_type(spec: dict) -> pa.DataType:
    base = NUMERIC_DTYPES[spec["dtype"]]
    return base if spec["shape"] == [1] else pa.list_(base, spec["shape"][0])


def _hf_feature(spec: dict) -> dict:
    """The `datasets` feature description lerobot embeds in the data parquet's schema metadata."""
    value = {"dtype": spec["dtype"], "_type": "Value"}
    return value if spec["shape"] == [1] else {"feature": value, "length": spec["shape"][0], "_type": "List"}


def _stats_arrow_type(dtype: str, stat: str, ndim: int) -> pa.DataType:
    if stat == "count":
        return pa.list_(pa.int64())
    leaf = pa.float64()
    if stat in ("min", "max") and dtype in ("bool", "int64", "int32"):
        leaf = NUMERIC_DTYPES[dtype] if dtype != "int32" else pa.int64()
    for _ in range(ndim):
        leaf = pa.list_(leaf)
    return leaf


# ---------------------------------------------------------------------------------------------- target folder


def is_dataset_folder(path: Path) -> bool:
    """A folder holding meta/info.json with a codebase_version: something this tool (or lerobot) wrote."""
    try:
        info = json.loads((path / "meta" / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "codebase_version" in info


def check_replaceable(root: Path, *, overwrite: bool) -> None:
    """`root` may become the dataset: new, empty, or (with overwrite) a dataset. Nothing else is deleted."""
    resolved = root.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(f"--out {root} is the current folder or contains it; expected a new dataset folder")
    if root.exists() and not root.is_dir():
        raise OutputError(f"--out {root} is a file; expected a dataset folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise OutputError(f"--out {root} already exists and is not empty; pass --overwrite to replace it")
        if not is_dataset_folder(root):
            raise OutputError(
                f"--out {root} holds files but no LeRobot dataset (no meta/info.json with a codebase_version); "
                "refusing to overwrite it"
            )
    check_output_dir("--out", root.parent if root.is_dir() else root)


# ---------------------------------------------------------------------------------------------- writer


class DatasetWriter:
    """Append frames, close episodes, finalize: a LeRobot v3.0 dataset at `root`.

    Numeric values of the current episode are buffered (small); camera frames go straight to the encoder
    and into a per-channel histogram, so memory does not grow with image size or episode length.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fps: int,
        features: dict[str, dict],
        robot_type: str | None = None,
        overwrite: bool = False,
    ):
        self.root = Path(root)
        check_replaceable(self.root, overwrite=overwrite)
        if int(fps) != fps or fps <= 0:
            raise DatasetError(f"fps is {fps!r}; expected a positive integer")
        self.fps = int(fps)
        self.robot_type = robot_type
        self.overwrite = overwrite
        self.features = _check_features(features)
        self.camera_keys = [k for k, s in self.features.items() if s["dtype"] == "video"]
        self.numeric_keys = [k for k in self.features if k not in self.camera_keys]
        self.all_features = {**self.features, **INDEX_FEATURES}
        self._staging = self.root.parent / f".{self.root.name}.partial-{uuid.uuid4().hex[:8]}"
        self._staging.mkdir(parents=True)
        self._tasks: dict[str, int] = {}
        self._episodes: list[dict[str, Any]] = []
        self._episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self._total_frames = 0
        self._encoders: dict[str, VideoEncoder] = {}
        self._data_writer: pq.ParquetWriter | None = None
        self._closed = False
        self._reset_buffer()

    # -- public API ---------------------------------------------------------------------------------------

    def add_frame(self, frame: dict[str, Any], task: str) -> None:
        """Append one row (observation before action t, action t) of the current episode."""
        self._check_open()
        given, expected = set(frame), set(self.features)
        if given != expected:
            missing, extra = sorted(expected - given), sorted(given - expected)
            raise DatasetError(f"frame keys differ from features: missing {missing}, unexpected {extra}")
        values = {key: self._numeric_value(key, frame[key]) for key in self.numeric_keys}
        images = {key: self._image_value(key, frame[key]) for key in self.camera_keys}
        for key, value in values.items():
            self._buffer[key].append(value)
        for key, image in images.items():
            self._encoder(key).write(image)
            self._histograms[key] += image_histogram(image)
        self._buffer_tasks.append(self._tasks.setdefault(task, len(self._tasks)))

    def save_episode(self) -> int:
        """Flush the current episode's rows and stats; returns its episode index."""
        self._check_open()
        length = len(self._buffer_tasks)
        if length == 0:
            raise DatasetError("save_episode called with no frames added; expected at least one add_frame")
        episode_index = len(self._episodes)
        columns = self._episode_columns(episode_index, length)
        self._write_rows(columns)
        stats = {
            k: numeric_stats(v.reshape(length, -1)) for k, v in columns.items() if k not in self.camera_keys
        }
        stats.update({k: image_stats(self._histograms[k], length) for k in self.camera_keys})
        self._episode_stats.append(stats)
        self._episodes.append(self._episode_row(episode_index, length))
        self._total_frames += length
        self._reset_buffer()
        return episode_index

    def finalize(self) -> None:
        """Close videos and data, write meta/, and move the finished dataset to `root`."""
        self._check_open()
        if self._buffer_tasks:
            raise DatasetError(
                f"{len(self._buffer_tasks)} frames were added after the last save_episode; "
                "expected save_episode() before finalize()"
            )
        if not self._episodes:
            raise DatasetError(f"no episode was saved for {self.root}; expected at least one save_episode()")
        for encoder in self._encoders.values():
            encoder.close()
        if self._data_writer is not None:
            self._data_writer.close()
        self._write_meta()
        self._closed = True
        self._move_into_place()

    def abort(self) -> None:
        """Throw away everything written so far; `root` is left as it was."""
        if self._closed:
            return
        self._closed = True
        for encoder in self._encoders.values():
            encoder.abort()
        if self._data_writer is not None:
            self._data_writer.close()
        shutil.rmtree(self._staging, ignore_errors=True)

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.finalize()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()

    # -- frames ---------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError(f"writer for {self.root} is already finalized or aborted")

    def _reset_buffer(self) -> None:
        self._buffer: dict[str, list[np.ndarray]] = {k: [] for k in self.numeric_keys}
        self._buffer_tasks: list[int] = []
        self._histograms = {k: np.zeros((3, 256), dtype=np.int64) for k in self.camera_keys}

    def _numeric_value(self, key: str, value: Any) -> np.ndarray:
        spec = self.features[key]
        array = np.asarray(value)
        if array.size != spec["shape"][0] or array.ndim > 1:
            raise DatasetError(f"{key} has shape {array.shape}; expected {tuple(spec['shape'])}")
        if not np.can_cast(array.dtype, spec["dtype"], casting="same_kind") and spec["dtype"] != "bool":
            raise DatasetError(f"{key} has dtype {array.dtype}; expected {spec['dtype']}")
        return array.reshape(-1).astype(spec["dtype"])

    def _image_value(self, key: str, value: Any) -> np.ndarray:
        image = np.asarray(value)
        height, width, _ = self.features[key]["shape"]
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise DatasetError(
                f"{key} frame is {image.dtype}{image.shape}; expected uint8{(height, width, 3)}"
            )
        return image

    def _encoder(self, key: str) -> VideoEncoder:
        height, width, _ = self.features[key]["shape"]
        if key not in self._encoders:
            path = self._staging / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
            self._encoders[key] = VideoEncoder(path, fps=self.fps, height=height, width=width)
        return self._encoders[key]

    # -- rows -----------------------------------------------------------------------------------------------

    def _episode_columns(self, episode_index: int, length: int) -> dict[str, np.ndarray]:
        """The episode's rows as numpy columns: user features then the index features, in info.json order."""
        frame_index = np.arange(length, dtype=np.int64)
        columns = {k: np.stack(self._buffer[k]) for k in self.numeric_keys}
        columns["timestamp"] = (frame_index / self.fps).astype(np.float32)
        columns["frame_index"] = frame_index
        columns["episode_index"] = np.full(length, episode_index, dtype=np.int64)
        columns["index"] = self._total_frames + frame_index
        columns["task_index"] = np.array(self._buffer_tasks, dtype=np.int64)
        return columns

    def _write_rows(self, columns: dict[str, np.ndarray]) -> None:
        arrays = []
        for key, values in columns.items():
            spec = self.all_features[key]
            flat = values.reshape(len(values), -1)
            if spec["shape"] == [1]:
                arrays.append(pa.array(flat[:, 0], type=_arrow_type(spec)))
            else:
                child = pa.array(flat.reshape(-1), type=NUMERIC_DTYPES[spec["dtype"]])
                arrays.append(pa.FixedSizeListArray.from_arrays(child, spec["shape"][0]))
        table = pa.Table.from_arrays(arrays, schema=self._data_schema())
        if self._data_writer is None:
            path = self._staging / DATA_PATH.format(chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(path, table.schema)
        self._data_writer.write_table(table)

    def _data_schema(self) -> pa.Schema:
        numeric = {k: s for k, s in self.all_features.items() if s["dtype"] != "video"}
        hf = {"info": {"features": {k: _hf_feature(s) for k, s in numeric.items()}}}
        fields = [pa.field(k, _arrow_type(s)) for k, s in numeric.items()]
        return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})

    def _episode_row(self, episode_index: int, length: int) -> dict[str, Any]:
        """meta/episodes columns except stats: where the episode's rows and video segments are."""
        ordered_tasks = sorted(set(self._buffer_tasks), key=self._buffer_tasks.index)
        names = {i: t for t, i in self._tasks.items()}
        row: dict[str, Any] = {
            "episode_index": episode_index,
            "tasks": [names[i] for i in ordered_tasks],
            "length": length,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": self._total_frames,
            "dataset_to_index": self._total_frames + length,
        }
        for key in self.camera_keys:
            row[f"videos/{key}/chunk_index"] = 0
            row[f"videos/{key}/file_index"] = 0
            row[f"videos/{key}/from_timestamp"] = self._total_frames / self.fps
            row[f"videos/{key}/to_timestamp"] = (self._total_frames + length) / self.fps
        return row

    # -- meta -----------------------------------------------------------------------------------------------

    def _write_meta(self) -> None:
        meta = self._staging / "meta"
        (meta / "episodes/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(self._episodes_table(), self._staging / EPISODES_PATH)
        pq.write_table(self._tasks_table(), meta / "tasks.parquet")
        stats = {
            k: _jsonable(aggregate_stats([s[k] for s in self._episode_stats])) for k in self.all_features
        }
        (meta / "stats.json").write_text(json.dumps(stats, indent=4))
        (meta / "info.json").write_text(json.dumps(self._info(), indent=4))

    def _episodes_table(self) -> pa.Table:
        columns: dict[str, pa.Array] = {}
        for name in self._episodes[0]:
            values = [row[name] for row in self._episodes]
            kind = pa.list_(pa.string()) if name == "tasks" else None
            if name.endswith("timestamp"):
                kind = pa.float64()
            columns[name] = pa.array(values, type=kind or pa.int64())
        for key, spec in self.all_features.items():
            ndim = 3 if spec["dtype"] == "video" else 1
            for stat in self._episode_stats[0][key]:
                values = [np.asarray(s[key][stat]).tolist() for s in self._episode_stats]
                columns[f"stats/{key}/{stat}"] = pa.array(
                    values, type=_stats_arrow_type(spec["dtype"], stat, ndim)
                )
        columns["meta/episodes/chunk_index"] = pa.array([0] * len(self._episodes), type=pa.int64())
        columns["meta/episodes/file_index"] = pa.array([0] * len(self._episodes), type=pa.int64())
        return pa.table(columns)

    def _tasks_table(self) -> pa.Table:
        """Task strings as a pandas index, as lerobot reads them back (`pd.read_parquet(...).index`)."""
        tasks = sorted(self._tasks, key=self._tasks.__getitem__)
        table = pa.table(
            {
                "task_index": pa.array([self._tasks[t] for t in tasks], type=pa.int64()),
                "__index_level_0__": pa.array(tasks, type=pa.large_string()),
            }
        )
        pandas_meta = {
            "index_columns": ["__index_level_0__"],
            "column_indexes": [
                {
                    "name": None,
                    "field_name": None,
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": {"encoding": "UTF-8"},
                }
            ],
            "columns": [
                {
                    "name": "task_index",
                    "field_name": "task_index",
                    "pandas_type": "int64",
                    "numpy_type": "int64",
                    "metadata": None,
                },
                {
                    "name": None,
                    "field_name": "__index_level_0__",
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": None,
                },
            ],
            "attributes": {},
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.0",
        }
        return table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})

    def _info(self) -> dict[str, Any]:
        features = {}
        for key, spec in self.all_features.items():
            features[key] = dict(spec)
            if spec["dtype"] == "video":
                height, width, _ = spec["shape"]
                features[key]["info"] = video_info(height=height, width=width, fps=self.fps)
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self._episodes),
            "total_frames": self._total_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self._episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.camera_keys else None,
            "features": features,
        }

    def _move_into_place(self) -> None:
        """Rename the staging folder to `root`; an old dataset (overwrite=True) is removed only after that."""
        old = None
        if self.root.exists():
            if self.root.is_dir() and not any(self.root.iterdir()):
                self.root.rmdir()
            else:
                old = self.root.parent / f".{self.root.name}.replaced-{uuid.uuid4().hex[:8]}"
                self.root.rename(old)
        self._staging.rename(self.root)
        if old is not None:
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
