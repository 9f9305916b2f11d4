"""Read LeRobot datasets (v3.0, and v2.1/v2.0) into `Episode`s, from a folder or from the Hub.

Opening reads metadata only (info.json, tasks, per-episode locations); `episode(i)` then reads
the rows of that one episode from its data parquet and wraps its cameras in frame sources that
decode lazily. v3.0 packs many episodes into one parquet and one mp4 per camera (an episode is a
row range and a time range); v2.x has one parquet and one mp4 per episode.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from replay_check.dataset.episode import DatasetMeta, Episode, Feature, FrameSource
from replay_check.dataset.hub import DatasetFiles, HubFiles, LocalFiles
from replay_check.dataset.video import EncodedImageFrameSource, VideoFrameSource, probe_size
from replay_check.errors import DatasetError, HubError, InputError, VideoError

V3 = "v3.0"
V2 = ("v2.0", "v2.1")
SUPPORTED_VERSIONS = (V3, *V2)
DEFAULT_PATHS = {
    V3: (
        "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    ),
    "v2": (
        "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    ),
}
# Per-frame columns an Episode is built from (besides cameras).
STATE, ACTION, ENV_STATE = "observation.state", "action", "observation.environment_state"
REWARD, SUCCESS, DONE = "next.reward", "next.success", "next.done"
TIMESTAMP, TASK_INDEX, EPISODE_INDEX = "timestamp", "task_index", "episode_index"


@dataclass(frozen=True)
class CameraSpec:
    """How one camera is stored: as video (with codec) or as encoded images in the parquet."""

    key: str
    height: int
    width: int
    storage: str  # "video" | "image"
    codec: str | None = None


@dataclass(frozen=True)
class EpisodeLocation:
    """Where one episode's rows and frames are: data file, and per video key (file, start time)."""

    index: int
    length: int
    data_file: str
    tasks: tuple[str, ...] = ()
    videos: dict[str, tuple[str, float]] = field(default_factory=dict)


class LeRobotDataset:
    """Metadata of a LeRobot dataset plus lazy access to its episodes."""

    def __init__(
        self,
        files: DatasetFiles,
        info: dict[str, Any],
        meta: DatasetMeta,
        locations: dict[int, EpisodeLocation],
        task_by_index: dict[int, str],
    ):
        self.files = files
        self.info = info
        self.meta = meta
        self.cameras = {k: camera_spec(k, info["features"][k]) for k in meta.camera_keys}
        self._locations = locations
        self._task_by_index = task_by_index
        self.episode_indices: list[int] = sorted(locations)

    def __repr__(self) -> str:
        version, count = self.meta.codebase_version, len(self.episode_indices)
        return f"LeRobotDataset({self.files.label!r}, {version}, {count} episodes)"

    def location(self, index: int) -> EpisodeLocation:
        if index not in self._locations:
            valid = self.episode_indices
            span = f"{valid[0]}..{valid[-1]}" if valid else "none"
            raise DatasetError(
                f"episode {index} is not in dataset {self.files.label}; valid episode indices: {span}"
            )
        return self._locations[index]

    def episode_length(self, index: int) -> int:
        return self.location(index).length

    def episode(self, index: int) -> Episode:
        """Rows of episode `index` (fetching only its own files) with lazily decoded cameras."""
        location = self.location(index)
        table = self._read_rows(location)
        length = table.num_rows
        if length != location.length:
            raise DatasetError(
                f"episode {index} of {self.files.label}: metadata says {location.length} rows, "
                f"{location.data_file} holds {length}"
            )
        for key in (STATE, ACTION):
            if key not in table.column_names:
                raise DatasetError(
                    f"dataset {self.files.label} has no {key!r} column in {location.data_file}"
                )
        where = f"{self.files.label}/{location.data_file} episode {index}"
        timestamps = _timestamps(table, length, self.meta.fps, where)
        _check_timestamps(timestamps, self.meta.fps, where)
        return Episode(
            meta=self.meta,
            index=index,
            task=self._task(table, location),
            timestamps=timestamps,
            state=_matrix(table, STATE, length, where).astype(np.float64),
            action=_matrix(table, ACTION, length, where).astype(np.float64),
            environment_state=_optional(table, ENV_STATE, length, np.float64, where, flat=False),
            reward=_optional(table, REWARD, length, np.float64, where),
            success=_optional(table, SUCCESS, length, bool, where),
            done=_optional(table, DONE, length, bool, where),
            cameras=self._cameras(table, location),
        )

    def _read_rows(self, location: EpisodeLocation) -> pa.Table:
        path = self.files.path(location.data_file)
        try:
            schema = pq.read_schema(path)
            wanted = [n for n in schema.names if n in _ROW_COLUMNS or n in self.cameras]
            filters = [(EPISODE_INDEX, "=", location.index)] if EPISODE_INDEX in schema.names else None
            return pq.read_table(path, columns=wanted, filters=filters)
        except _PARQUET_ERRORS as exc:
            raise DatasetError(f"cannot read {path}: {_first_line(exc)}") from None

    def _task(self, table: pa.Table, location: EpisodeLocation) -> str:
        if TASK_INDEX in table.column_names and table.num_rows:
            task_index = int(table.column(TASK_INDEX)[0].as_py())
            if task_index in self._task_by_index:
                return self._task_by_index[task_index]
        return location.tasks[0] if location.tasks else ""

    def _cameras(self, table: pa.Table, location: EpisodeLocation) -> dict[str, FrameSource]:
        cameras: dict[str, FrameSource] = {}
        for key, spec in self.cameras.items():
            if spec.storage == "image":
                cameras[key] = _image_source(table, spec, location)
            else:
                cameras[key] = self._video_source(spec, location, table.num_rows)
        return cameras

    def _video_source(self, spec: CameraSpec, location: EpisodeLocation, length: int) -> VideoFrameSource:
        if spec.key not in location.videos:
            raise DatasetError(
                f"episode {location.index} of {self.files.label} has no video location for {spec.key}"
            )
        relpath, from_timestamp = location.videos[spec.key]
        try:
            path = self.files.path(relpath)
        except HubError:
            raise
        except DatasetError as exc:
            raise VideoError(
                f"video file {self.files.root / relpath} for {spec.key} of episode "
                f"{location.index} does not exist"
            ) from exc
        height, width = probe_size(path)
        if (height, width) != (spec.height, spec.width):
            raise VideoError(
                f"video {path} for {spec.key} is {width}x{height}; meta/info.json says {spec.width}x{spec.height}"
            )
        return VideoFrameSource(
            path,
            fps=self.meta.fps,
            length=length,
            from_timestamp=from_timestamp,
            height=spec.height,
            width=spec.width,
        )


# What pyarrow raises on a damaged file: its own errors, OSError, and ValueError (UnicodeDecodeError on
# mangled column names, among others).
_PARQUET_ERRORS = (pa.ArrowException, OSError, ValueError)


def _first_line(exc: Exception) -> str:
    text = (getattr(exc, "strerror", None) if isinstance(exc, OSError) else None) or str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


_ROW_COLUMNS = {STATE, ACTION, ENV_STATE, REWARD, SUCCESS, DONE, TIMESTAMP, TASK_INDEX, EPISODE_INDEX}


def open_dataset(
    root: str | Path | None = None, repo_id: str | None = None, revision: str | None = None
) -> LeRobotDataset:
    """Open a dataset folder (`root`) or a Hub dataset (`repo_id`, fetching metadata only)."""
    if (root is None) == (repo_id is None):
        given = "both --root and --repo-id" if root is not None else "neither --root nor --repo-id"
        raise InputError(f"give exactly one of --root and --repo-id (got {given})")
    if root is not None:
        files: DatasetFiles = LocalFiles(root)
        if not files.exists("meta/info.json"):
            raise DatasetError(f"no LeRobot dataset at {files.label}: expected {files.label}/meta/info.json")
    else:
        files = HubFiles(repo_id, revision)
    info = _read_json(files.path("meta/info.json"))
    version = str(info.get("codebase_version", ""))
    if version not in SUPPORTED_VERSIONS:
        raise DatasetError(
            f"dataset {files.label} has codebase_version {version!r}; "
            f"supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    _check_info(info, f"{files.label}/meta/info.json")
    if version == V3:
        locations, tasks = _v3_episodes(files, info), _v3_tasks(files)
    else:
        locations, tasks = _v2_episodes(files, info), _v2_tasks(files)
    meta = DatasetMeta(
        root=files.root,
        codebase_version=version,
        fps=float(info["fps"]),
        robot_type=info.get("robot_type"),
        total_episodes=int(info.get("total_episodes", len(locations))),
        total_frames=int(info.get("total_frames", sum(loc.length for loc in locations.values()))),
        features=parse_features(info["features"], f"{files.label}/meta/info.json"),
        tasks=tuple(tasks[i] for i in sorted(tasks)),
        repo_id=repo_id,
        revision=revision,
        commit=getattr(files, "commit", None),
    )
    return LeRobotDataset(files, info, meta, locations, tasks)


def _check_info(info: dict[str, Any], where: str) -> None:
    """The info.json fields everything else relies on have the right types (one line naming the field)."""
    for key in ("fps", "features"):
        if key not in info:
            raise DatasetError(f"{where} lacks {key!r}")
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
        raise DatasetError(f"{where}: fps is {json.dumps(fps)}; expected a positive number of frames per second")
    for key in ("total_episodes", "total_frames", "chunks_size"):
        value = info.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise DatasetError(f"{where}: {key} is {json.dumps(value)}; expected a non-negative integer")
    features = info["features"]
    if not isinstance(features, dict):
        raise DatasetError(f"{where}: features is {_json_type(features)}; expected an object of feature entries")
    for key in (STATE, ACTION):
        if key not in features:
            raise DatasetError(
                f"{where}: features lack {key!r}; a replay needs the recorded {key} "
                f"(features present: {', '.join(sorted(features)) or 'none'})"
            )


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# --- features ---------------------------------------------------------------------------------


def flatten_names(names: Any) -> tuple[str, ...] | None:
    """info.json `names` (list, list of lists, dict of lists, or null) as a flat tuple of str."""
    if names is None:
        return None
    if isinstance(names, dict):
        names = list(names.values())
    if isinstance(names, list | tuple):
        flat: list[str] = []
        for item in names:
            flat.extend(flatten_names(item) or ())
        return tuple(flat)
    return (str(names),)


def parse_features(raw: dict[str, Any], where: str = "meta/info.json") -> dict[str, Feature]:
    features = {}
    for key, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("dtype"), str):
            raise DatasetError(f"{where}: feature {key!r} has no dtype string; expected {{\"dtype\": ...}}")
        shape = spec.get("shape") or []
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise DatasetError(
                f"{where}: feature {key!r} has shape {json.dumps(shape)}; expected a list of integers"
            )
        shape = tuple(shape)
        features[key] = Feature(
            key=key, dtype=str(spec["dtype"]), shape=shape, names=flatten_names(spec.get("names"))
        )
    return features


def camera_spec(key: str, spec: dict[str, Any]) -> CameraSpec:
    """Height, width and codec of a camera feature (video info block first, else shape + names)."""
    video = spec.get("info") or spec.get("video_info") or {}
    height, width = video.get("video.height"), video.get("video.width")
    if height is None or width is None:
        height, width = _image_size(key, list(spec.get("shape") or ()), flatten_names(spec.get("names")))
    storage = "video" if spec["dtype"] == "video" else "image"
    codec = video.get("video.codec") if storage == "video" else None
    return CameraSpec(key=key, height=int(height), width=int(width), storage=storage, codec=codec)


def _image_size(key: str, shape: list[int], names: tuple[str, ...] | None) -> tuple[int, int]:
    if len(shape) != 3:
        raise DatasetError(f"camera feature {key!r} has shape {shape}; expected 3 dimensions")
    lowered = [n.lower() for n in names or ()]
    if "height" in lowered and "width" in lowered and len(lowered) == 3:
        return shape[lowered.index("height")], shape[lowered.index("width")]
    if shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
        return shape[1], shape[2]
    return shape[0], shape[1]


# --- v3.0 metadata ----------------------------------------------------------------------------


def _v3_episodes(files: DatasetFiles, info: dict[str, Any]) -> dict[int, EpisodeLocation]:
    parts = files.list("meta/episodes", ".parquet")
    if not parts:
        raise DatasetError(f"dataset {files.label} (v3.0) has no meta/episodes/*.parquet")
    data_path = info.get("data_path") or DEFAULT_PATHS[V3][0]
    video_path = info.get("video_path") or DEFAULT_PATHS[V3][1]
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    locations: dict[int, EpisodeLocation] = {}
    for part in parts:
        for row in _read_meta_parquet(files.path(part)):
            location = _v3_location(row, data_path, video_path, video_keys, part)
            locations[location.index] = location
    return locations


def _read_meta_parquet(path: Path) -> list[dict[str, Any]]:
    """Rows of an episodes-metadata parquet, without the (large) per-episode stats columns."""
    try:
        names = [n for n in pq.read_schema(path).names if not n.startswith("stats/")]
        return pq.read_table(path, columns=names).to_pylist()
    except _PARQUET_ERRORS as exc:
        raise DatasetError(f"cannot read episodes metadata {path}: {_first_line(exc)}") from None


def _v3_location(
    row: dict[str, Any], data_path: str, video_path: str, video_keys: list[str], part: str
) -> EpisodeLocation:
    try:
        index = int(row["episode_index"])
        length = int(row.get("length") or row["dataset_to_index"] - row["dataset_from_index"])
        data_file = data_path.format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        videos = {}
        for key in video_keys:
            prefix = f"videos/{key}/"
            relpath = video_path.format(
                video_key=key, chunk_index=row[prefix + "chunk_index"], file_index=row[prefix + "file_index"]
            )
            videos[key] = (relpath, float(row[prefix + "from_timestamp"]))
    except (KeyError, TypeError) as exc:
        raise DatasetError(
            f"{part}: episode row lacks {exc}; expected LeRobot v3.0 episode metadata"
        ) from exc
    return EpisodeLocation(index, length, data_file, tuple(row.get("tasks") or ()), videos)


def _v3_tasks(files: DatasetFiles) -> dict[int, str]:
    if not files.exists("meta/tasks.parquet"):
        return {}
    path = files.path("meta/tasks.parquet")
    try:
        table = pq.read_table(path)
    except _PARQUET_ERRORS as exc:
        raise DatasetError(f"cannot read {path}: {_first_line(exc)}") from None
    text_column = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
    if TASK_INDEX not in table.column_names or text_column is None:
        raise DatasetError(f"{path} has columns {table.column_names}; expected task_index and the task text")
    return {
        int(i): str(t)
        for i, t in zip(
            table.column(TASK_INDEX).to_pylist(), table.column(text_column).to_pylist(), strict=True
        )
    }


# --- v2.x metadata ----------------------------------------------------------------------------


def _v2_episodes(files: DatasetFiles, info: dict[str, Any]) -> dict[int, EpisodeLocation]:
    chunks_size = int(info.get("chunks_size") or 1000)
    data_path = info.get("data_path") or DEFAULT_PATHS["v2"][0]
    video_path = info.get("video_path") or DEFAULT_PATHS["v2"][1]
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    locations = {}
    for row in _read_jsonl(files, "meta/episodes.jsonl"):
        try:
            index, length = int(row["episode_index"]), int(row["length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{files.label}/meta/episodes.jsonl: line {row!r} lacks episode_index/length"
            ) from exc
        chunk = index // chunks_size
        videos = {
            k: (video_path.format(episode_chunk=chunk, video_key=k, episode_index=index), 0.0)
            for k in video_keys
        }
        data_file = data_path.format(episode_chunk=chunk, episode_index=index)
        locations[index] = EpisodeLocation(index, length, data_file, tuple(row.get("tasks") or ()), videos)
    return locations


def _v2_tasks(files: DatasetFiles) -> dict[int, str]:
    if not files.exists("meta/tasks.jsonl"):
        return {}
    rows = _read_jsonl(files, "meta/tasks.jsonl")
    try:
        return {int(r["task_index"]): str(r["task"]) for r in rows}
    except (KeyError, TypeError, ValueError):
        raise DatasetError(
            f"{files.label}/meta/tasks.jsonl: a line lacks an integer task_index or a task; "
            'expected {"task_index": 0, "task": "..."} per line'
        ) from None


def _read_jsonl(files: DatasetFiles, relpath: str) -> list[dict[str, Any]]:
    path = files.path(relpath)
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path} line {number} is not JSON: {exc}") from exc
    return rows


def _read_text(path: Path) -> str:
    """A metadata file's text; a DatasetError naming the file when it is unreadable or not UTF-8."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); expected UTF-8 JSON"
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} holds {type(data).__name__}; expected a JSON object")
    return data


# --- columns ----------------------------------------------------------------------------------


def _matrix(table: pa.Table, key: str, length: int, where: str = "the data file") -> np.ndarray:
    """A (T, D) array from a numeric scalar, list or fixed-size-list column."""
    array = table.column(key).combine_chunks()
    while (
        pa.types.is_list(array.type)
        or pa.types.is_large_list(array.type)
        or pa.types.is_fixed_size_list(array.type)
    ):
        array = array.flatten()
    kind = array.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DatasetError(f"{where}: column {key!r} holds {kind} values; expected numbers")
    if array.null_count:
        raise DatasetError(f"{where}: column {key!r} has {array.null_count} null value(s); expected numbers")
    values = array.to_numpy(zero_copy_only=False)
    if length == 0:
        return values.reshape(0, 0)
    if values.size % length:
        raise DatasetError(
            f"{where}: column {key!r} holds {values.size} values for {length} rows; expected a fixed width"
        )
    return values.reshape(length, -1)


def _optional(table: pa.Table, key: str, length: int, dtype: type, where: str,
              flat: bool = True) -> np.ndarray | None:
    """An optional per-frame column; (T, 1) is flattened to (T,) when `flat`."""
    if key not in table.column_names:
        return None
    values = _matrix(table, key, length, where).astype(dtype)
    return values[:, 0] if flat and values.ndim == 2 and values.shape[1] == 1 else values


def _timestamps(table: pa.Table, length: int, fps: float, where: str) -> np.ndarray:
    if TIMESTAMP not in table.column_names:
        return np.arange(length, dtype=np.float64) / fps
    return _matrix(table, TIMESTAMP, length, where).astype(np.float64).reshape(length)


# Rows must be 1/fps apart within this (LeRobot's own tolerance when it matches timestamps to frames).
TIMESTAMP_STEP_TOLERANCE_S = 1e-4


def _check_timestamps(timestamps: np.ndarray, fps: float, where: str) -> None:
    """Row t+1 is 1/fps after row t: frames are looked up by time, so a gap or a repeat misaligns them."""
    if not np.all(np.isfinite(timestamps)):
        row = int(np.flatnonzero(~np.isfinite(timestamps))[0])
        raise DatasetError(f"{where}: timestamp of row {row} is {timestamps[row]}; expected a finite time")
    steps = np.diff(timestamps)
    bad = np.flatnonzero(np.abs(steps - 1.0 / fps) > TIMESTAMP_STEP_TOLERANCE_S)
    if bad.size:
        row = int(bad[0]) + 1
        raise DatasetError(
            f"{where}: timestamps are not increasing by 1/fps = {1.0 / fps:.4g} s: row {row} is at "
            f"{timestamps[row]:.4f} s, row {row - 1} at {timestamps[row - 1]:.4f} s"
        )


def _image_source(table: pa.Table, spec: CameraSpec, location: EpisodeLocation) -> EncodedImageFrameSource:
    if spec.key not in table.column_names:
        raise DatasetError(f"image feature {spec.key!r} is not a column of {location.data_file}")
    column = table.column(spec.key).combine_chunks()
    if pa.types.is_struct(column.type):
        images = column.field("bytes").to_pylist()
    elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        images = column.to_pylist()
    else:
        raise DatasetError(
            f"image column {spec.key!r} of {location.data_file} has type {column.type}; "
            "expected a struct {bytes, path} or binary"
        )
    return EncodedImageFrameSource(
        images, height=spec.height, width=spec.width, label=f"{location.data_file} {spec.key}"
    )
