"""The LeRobot v3.0 writer, checked with pyarrow and PyAV directly (not through our reader)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from replay_check.dataset.writer import DatasetWriter, aggregate_stats, numeric_stats
from replay_check.errors import DatasetError, OutputError

FPS = 50
HEIGHT, WIDTH = 48, 64
LENGTHS = (30, 20)
TASKS = ("Insert the peg into the socket.", "Pick up the cube.")
CAMERA = "observation.images.top"
FEATURES = {
    CAMERA: {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "names": ["height", "width", "channel"]},
    "observation.state": {
        "dtype": "float32",
        "shape": [14],
        "names": {"motors": [f"j{i}" for i in range(14)]},
    },
    "action": {"dtype": "float32", "shape": [14], "names": {"motors": [f"j{i}" for i in range(14)]}},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}


def smooth_image(n: int) -> np.ndarray:
    """A smooth gradient that changes with the global frame number n (AV1 keeps such images nearly intact)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    red = 40 + 2 * x + n
    green = 60 + 3 * y
    blue = np.full_like(x, 200 - 2 * n)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def state_row(n: int) -> np.ndarray:
    return (np.arange(14) * 0.1 + n * 0.01).astype(np.float32)


def frame(n: int, last: bool) -> dict:
    return {
        CAMERA: smooth_image(n),
        "observation.state": state_row(n),
        "action": state_row(n) + 1.0,
        "next.done": last,
    }


def write_dataset(root: Path, lengths=LENGTHS) -> Path:
    n = 0
    with DatasetWriter(root, fps=FPS, features=FEATURES, robot_type="aloha") as writer:
        for episode, length in enumerate(lengths):
            for i in range(length):
                writer.add_frame(frame(n, i == length - 1), task=TASKS[episode % len(TASKS)])
                n += 1
            assert writer.save_episode() == episode
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("writer") / "ds")


def test_layout_and_info(dataset: Path):
    assert (dataset / "data/chunk-000/file-000.parquet").is_file()
    assert (dataset / "meta/episodes/chunk-000/file-000.parquet").is_file()
    assert (dataset / f"videos/{CAMERA}/chunk-000/file-000.mp4").is_file()
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 50, 2)
    assert info["fps"] == FPS and info["splits"] == {"train": "0:2"}
    assert list(info["features"]) == [
        *FEATURES,
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    video = info["features"][CAMERA]
    assert video["info"]["video.codec"] == "av1" and video["info"]["video.pix_fmt"] == "yuv420p"
    assert (video["info"]["video.height"], video["info"]["video.width"]) == (HEIGHT, WIDTH)
    assert info["features"]["observation.state"]["names"] == FEATURES["observation.state"]["names"]


def test_data_rows(dataset: Path):
    table = pq.read_table(dataset / "data/chunk-000/file-000.parquet")
    assert table.num_rows == sum(LENGTHS)
    assert CAMERA not in table.column_names
    assert table.schema.field("observation.state").type == pa.list_(pa.float32(), 14)
    assert table.schema.field("next.done").type == pa.bool_()
    rows = table.to_pydict()
    expected_frame = [i for length in LENGTHS for i in range(length)]
    assert rows["index"] == list(range(50))
    assert rows["frame_index"] == expected_frame
    assert rows["episode_index"] == [0] * 30 + [1] * 20
    assert rows["task_index"] == [0] * 30 + [1] * 20
    np.testing.assert_array_equal(
        rows["timestamp"], np.array(expected_frame, dtype=np.float32) / np.float32(FPS)
    )
    np.testing.assert_array_equal(
        np.array(rows["observation.state"]), np.stack([state_row(n) for n in range(50)])
    )
    assert [i for i, done in enumerate(rows["next.done"]) if done] == [29, 49]


def test_episodes_and_tasks(dataset: Path):
    episodes = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in episodes] == list(LENGTHS)
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 30), (30, 50)]
    assert [e["tasks"] for e in episodes] == [[TASKS[0]], [TASKS[1]]]
    assert [e[f"videos/{CAMERA}/from_timestamp"] for e in episodes] == [0.0, 0.6]
    assert [e[f"videos/{CAMERA}/to_timestamp"] for e in episodes] == [0.6, 1.0]
    assert episodes[1]["stats/observation.state/count"] == [20]
    np.testing.assert_allclose(
        episodes[1]["stats/observation.state/mean"], np.stack([state_row(n) for n in range(30, 50)]).mean(0)
    )
    tasks = pq.read_table(dataset / "meta/tasks.parquet").to_pylist()
    assert tasks == [
        {"task_index": 0, "__index_level_0__": TASKS[0]},
        {"task_index": 1, "__index_level_0__": TASKS[1]},
    ]


def test_video_frames_decode_at_episode_timestamps(dataset: Path):
    episodes = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    starts = [e[f"videos/{CAMERA}/from_timestamp"] for e in episodes]
    with av.open(str(dataset / f"videos/{CAMERA}/chunk-000/file-000.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("libdav1d", "av1", "libaom-av1")
        decoded = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    assert len(decoded) == sum(LENGTHS)
    n = 0
    for episode, length in enumerate(LENGTHS):
        for i in range(length):
            time, image = decoded[n]
            assert time == pytest.approx(starts[episode] + i / FPS, abs=1e-6)
            error = np.abs(image.astype(float) - smooth_image(n)).mean() / 255
            assert error < 3 / 255, f"frame {n}: mean abs diff {error * 255:.2f}/255"
            n += 1


def test_stats(dataset: Path):
    stats = json.loads((dataset / "meta/stats.json").read_text())
    assert set(stats) == {*FEATURES, "timestamp", "frame_index", "episode_index", "index", "task_index"}
    states = np.stack([state_row(n) for n in range(50)]).astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], states.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["std"], states.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats["observation.state"]["min"], states.min(0), rtol=1e-6)
    assert stats["observation.state"]["count"] == [50]
    assert stats["index"]["max"] == [49] and stats["next.done"]["max"] == [True]
    images = np.stack([smooth_image(n) for n in range(50)]) / 255.0
    image_mean = np.array(stats[CAMERA]["mean"])
    assert image_mean.shape == (3, 1, 1)
    np.testing.assert_allclose(image_mean.ravel(), images.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(stats[CAMERA]["std"]), images.std(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(np.ravel(stats[CAMERA]["max"]), images.max(axis=(0, 1, 2)))
    assert stats[CAMERA]["count"] == [50]


def test_aggregate_stats_matches_stats_of_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 3)) for n in (7, 30, 12)]
    merged = aggregate_stats([numeric_stats(p) for p in parts])
    whole = numeric_stats(np.concatenate(parts))
    for key in ("min", "max", "mean", "std", "count"):
        np.testing.assert_allclose(merged[key], whole[key], rtol=1e-12)


def test_exception_inside_with_leaves_no_dataset(tmp_path: Path):
    root = tmp_path / "crashed"
    with pytest.raises(RuntimeError), DatasetWriter(root, fps=FPS, features=FEATURES) as writer:
        for n in range(5):
            writer.add_frame(frame(n, False), task=TASKS[0])
        writer.save_episode()
        writer.add_frame(frame(5, False), task=TASKS[0])
        raise RuntimeError("simulator crashed")
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


def test_finalize_with_unsaved_frames_fails_and_cleans_up(tmp_path: Path):
    root = tmp_path / "ds"
    with (
        pytest.raises(DatasetError, match="save_episode"),
        DatasetWriter(root, fps=FPS, features=FEATURES) as writer,
    ):
        writer.add_frame(frame(0, False), task=TASKS[0])
    assert list(tmp_path.iterdir()) == []


def _one_frame_dataset(root: Path, *, overwrite: bool = False) -> None:
    with DatasetWriter(root, fps=FPS, features=FEATURES, overwrite=overwrite) as writer:
        writer.add_frame(frame(0, True), task=TASKS[0])
        writer.save_episode()


def test_existing_root_needs_overwrite_and_only_a_dataset_is_overwritten(tmp_path: Path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match=f"{root} already exists and is not empty; pass --overwrite"):
        DatasetWriter(root, fps=FPS, features=FEATURES)
    with pytest.raises(OutputError, match="holds files but no LeRobot dataset .*refusing to overwrite"):
        DatasetWriter(root, fps=FPS, features=FEATURES, overwrite=True)
    assert (root / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no staging folder left behind
    (root / "keep.txt").unlink()
    _one_frame_dataset(root)
    (root / "notes.txt").write_text("inside a dataset")
    _one_frame_dataset(root, overwrite=True)  # a dataset (meta/info.json) is replaced whole
    assert not (root / "notes.txt").exists()
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_out_that_is_the_current_folder_or_under_a_file_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    for out, message in ((Path("."), "is the current folder or contains it"),
                         (tmp_path.parent, "is the current folder or contains it"),
                         (Path("f.txt"), "is a file; expected a dataset folder"),
                         (Path("f.txt/ds"), "f.txt is a file, not a folder")):
        with pytest.raises(OutputError, match=message):
            DatasetWriter(out, fps=FPS, features=FEATURES, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": None}, "missing"),
        ({"extra": 1.0}, "unexpected"),
        ({CAMERA: np.zeros((HEIGHT, WIDTH, 3), np.float32)}, "expected uint8"),
        ({"observation.state": np.zeros(13, np.float32)}, r"expected \(14,\)"),
    ],
)
def test_bad_frames_are_rejected(tmp_path: Path, change: dict, message: str):
    bad = frame(0, False) | change
    bad = {k: v for k, v in bad.items() if v is not None}
    writer = DatasetWriter(tmp_path / "ds", fps=FPS, features=FEATURES)
    with pytest.raises(DatasetError, match=message):
        writer.add_frame(bad, task=TASKS[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_reserved_and_unknown_features_are_rejected(tmp_path: Path):
    with pytest.raises(DatasetError, match="reserved"):
        DatasetWriter(tmp_path / "a", fps=FPS, features={"timestamp": {"dtype": "float32", "shape": [1]}})
    with pytest.raises(DatasetError, match="dtype"):
        DatasetWriter(tmp_path / "b", fps=FPS, features={"x": {"dtype": "string", "shape": [1]}})
    assert list(tmp_path.iterdir()) == []


def test_round_trip_through_reader(dataset: Path):
    """What the writer stores, our reader gives back (runs once replay_check.dataset.open_dataset exists)."""
    import replay_check.dataset as dataset_package

    if not hasattr(dataset_package, "open_dataset"):
        pytest.skip("replay_check.dataset.open_dataset is not in the tree yet")
    opened = dataset_package.open_dataset(root=dataset)
    assert (opened.meta.total_episodes, opened.meta.total_frames, opened.meta.fps) == (2, 50, FPS)
    assert opened.meta.camera_keys == (CAMERA,)
    episode = opened.episode(1)
    assert (episode.length, episode.task) == (20, TASKS[1])
    np.testing.assert_array_equal(episode.state, np.stack([state_row(n) for n in range(30, 50)]))
    np.testing.assert_allclose(episode.timestamps, np.arange(20) / FPS, atol=1e-6)
    frames = list(episode.cameras[CAMERA].iter_frames(0))
    assert len(frames) == 20
    errors = [np.abs(f.astype(float) - smooth_image(30 + i)).mean() for i, f in enumerate(frames)]
    assert max(errors) < 3, f"worst mean abs diff {max(errors):.2f}/255"
