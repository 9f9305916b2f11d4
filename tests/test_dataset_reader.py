"""Reading LeRobot v3.0 / v2.1 datasets, fetching from the Hub lazily, and the `info` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from replay_check.dataset import hub, open_dataset
from replay_check.dataset.reader import camera_spec, flatten_names
from replay_check.errors import DatasetError, HubError, HubUnavailableError, InputError, VideoError
from tests.dataset_factory import feature_value, frame_value, write_dataset

LENGTHS = (6, 4, 5)
FEATURES = {
    "observation.state": (3,),
    "action": (3,),
    "observation.environment_state": (4,),
    "next.reward": (1,),
    "next.done": {"dtype": "bool", "shape": [1]},
}
VIDEO, IMAGE = "observation.images.top", "observation.image"
TASKS = ("Push the block.", "Pull the block.")


def _write(root: Path, version: str, **overrides) -> Path:
    options = dict(
        version=version,
        fps=10,
        lengths=LENGTHS,
        features=FEATURES,
        video_key=VIDEO,
        image_key=IMAGE,
        tasks=TASKS,
        episodes_per_file=2,
        names={"motors": ["x", "y", "z"]},
    )
    return write_dataset(root, **(options | overrides))


@pytest.fixture(scope="module", params=["v3.0", "v2.1"])
def dataset_root(request, tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp(request.param.replace(".", "_")), request.param)


def _levels(source) -> list[int]:
    return [int(round(float(frame.mean()))) for frame in source.iter_frames()]


def test_metadata(dataset_root: Path):
    dataset = open_dataset(root=dataset_root)
    meta = dataset.meta
    assert (meta.fps, meta.total_episodes, meta.total_frames) == (10.0, 3, sum(LENGTHS))
    assert meta.tasks == TASKS
    assert meta.features["observation.state"].names == ("x", "y", "z")
    assert meta.features["action"].shape == (3,)
    assert set(meta.camera_keys) == {VIDEO, IMAGE}
    assert dataset.episode_indices == [0, 1, 2]
    assert [dataset.episode_length(i) for i in range(3)] == list(LENGTHS)
    assert (dataset.cameras[VIDEO].height, dataset.cameras[VIDEO].width) == (32, 48)
    assert dataset.cameras[IMAGE].storage == "image"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_episode_rows_and_cameras(dataset_root: Path, index: int):
    """Episode 1 starts mid-file (v3.0) and episode 2 lives in the second data and video file."""
    episode = open_dataset(root=dataset_root).episode(index)
    length = LENGTHS[index]
    assert (episode.index, episode.length, episode.task) == (index, length, TASKS[index % 2])
    expected_state = np.stack([feature_value(0, index, r, 3) for r in range(length)])
    assert episode.state.dtype == np.float64 and episode.state.shape == (length, 3)
    np.testing.assert_array_equal(episode.state, expected_state)
    np.testing.assert_array_equal(
        episode.action, np.stack([feature_value(1, index, r, 3) for r in range(length)])
    )
    assert episode.environment_state.shape == (length, 4)
    assert episode.reward.shape == (length,) and episode.reward.dtype == np.float64
    assert episode.done.tolist() == [False] * (length - 1) + [True]
    assert episode.success is None
    np.testing.assert_allclose(episode.timestamps, np.arange(length) / 10, atol=1e-6)
    want = [frame_value(index, r) for r in range(length)]
    np.testing.assert_allclose(_levels(episode.cameras[VIDEO]), want, atol=3)
    assert _levels(episode.cameras[IMAGE]) == want
    assert episode.first_frame(VIDEO).shape == (32, 48, 3)


@pytest.mark.parametrize(
    ("names", "flat"),
    [
        (None, None),
        (["a", "b"], ("a", "b")),
        ([["a", "b"], ["c"]], ("a", "b", "c")),
        ({"motors": ["a", "b"]}, ("a", "b")),
        ({"left": ["a"], "right": ["b", "c"]}, ("a", "b", "c")),
    ],
)
def test_flatten_names(names, flat):
    assert flatten_names(names) == flat


def test_camera_size_from_shape_and_names_when_no_video_info():
    chw = {"dtype": "image", "shape": [3, 96, 128], "names": ["channels", "height", "width"]}
    hwc = {"dtype": "image", "shape": [96, 128, 3], "names": None}
    converted = {
        "dtype": "video",
        "shape": [3, 96, 128],
        "video_info": {"video.height": 96, "video.width": 128},
    }
    for spec in (chw, hwc, converted):
        assert (camera_spec("cam", spec).height, camera_spec("cam", spec).width) == (96, 128)


def test_out_of_range_episode_lists_the_valid_range(dataset_root: Path):
    dataset = open_dataset(root=dataset_root)
    with pytest.raises(DatasetError, match=r"episode 7 .*valid episode indices: 0\.\.2"):
        dataset.episode(7)
    with pytest.raises(DatasetError, match="valid episode indices"):
        dataset.episode_length(-1)


def test_bad_roots_and_arguments(tmp_path: Path):
    with pytest.raises(DatasetError, match=rf"{tmp_path}.*meta/info\.json"):
        open_dataset(root=tmp_path)
    with pytest.raises(InputError, match="exactly one"):
        open_dataset()
    with pytest.raises(InputError, match="exactly one"):
        open_dataset(root=tmp_path, repo_id="lerobot/pusht")


def test_unknown_codebase_version_is_rejected(tmp_path: Path):
    root = write_dataset(tmp_path / "ds", lengths=(2,))
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps(info | {"codebase_version": "v1.6"}))
    with pytest.raises(DatasetError, match=r"'v1\.6'.*supported: v3\.0"):
        open_dataset(root=root)


def test_missing_video_file_is_a_video_error_naming_it(tmp_path: Path):
    root = write_dataset(tmp_path / "ds", lengths=(3, 2), video_key=VIDEO, episodes_per_file=1)
    missing = root / f"videos/{VIDEO}/chunk-000/file-001.mp4"
    missing.unlink()
    dataset = open_dataset(root=root)
    assert dataset.episode(0).length == 3  # the other episode's files are still readable
    with pytest.raises(VideoError, match="file-001.mp4"):
        dataset.episode(1)


def test_video_shorter_than_last_episode_is_reported(tmp_path: Path):
    root = write_dataset(tmp_path / "ds", lengths=(3, 4), video_key=VIDEO, drop_video_frames=[(1, 3)])
    camera = open_dataset(root=root).episode(1).cameras[VIDEO]
    with pytest.raises(VideoError, match=r"row 3 of 4 .*t=0\.6000s"):
        list(camera.iter_frames())


# --- Hub ---------------------------------------------------------------------------------------


class FakeHub:
    """Serves a local dataset folder as if it were a Hub cache snapshot; records what was fetched."""

    def __init__(self, snapshot: Path):
        self.snapshot = snapshot
        self.fetched: list[str] = []

    def download(self, repo_id, filename, *, repo_type, revision, local_files_only):
        from huggingface_hub.errors import RemoteEntryNotFoundError

        assert (repo_id, repo_type) == ("org/tiny", "dataset")
        self.fetched.append(filename)
        path = self.snapshot / filename
        if not path.is_file():
            raise RemoteEntryNotFoundError(f"404 {filename}", response=_Response404())
        return str(path)

    def list_tree(self, repo_id, path_in_repo, revision):
        return [p.relative_to(self.snapshot).as_posix() for p in (self.snapshot / path_in_repo).rglob("*")]


class _Response404:
    status_code = 404
    headers: dict = {}
    request = None
    url = "https://huggingface.co/fake"


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch) -> FakeHub:
    snapshot = _write(tmp_path / "snapshot", "v3.0")
    fake = FakeHub(snapshot)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hf_hub_download", fake.download)
    monkeypatch.setattr(hub, "list_repo_tree", fake.list_tree)
    monkeypatch.setattr(hub, "hub_answers", lambda *a, **k: True)
    return fake


def test_hub_opening_fetches_metadata_only_then_one_episode_s_files(fake_hub: FakeHub):
    dataset = open_dataset(repo_id="org/tiny", revision="v1")
    assert all(name.startswith("meta/") for name in fake_hub.fetched), fake_hub.fetched
    assert "meta/info.json" in fake_hub.fetched and dataset.meta.repo_id == "org/tiny"
    assert dataset.meta.root == fake_hub.snapshot and dataset.meta.revision == "v1"
    fake_hub.fetched.clear()
    episode = dataset.episode(2)
    assert sorted(fake_hub.fetched) == [
        "data/chunk-000/file-001.parquet",
        f"videos/{VIDEO}/chunk-000/file-001.mp4",
    ]
    np.testing.assert_allclose(_levels(episode.cameras[VIDEO]), [frame_value(2, r) for r in range(5)], atol=3)


def test_hub_missing_data_file_names_repo_revision_and_file(fake_hub: FakeHub):
    (fake_hub.snapshot / "data/chunk-000/file-001.parquet").unlink()
    dataset = open_dataset(repo_id="org/tiny")
    with pytest.raises(HubError) as caught:
        dataset.episode(2)
    message = str(caught.value)
    assert "data/chunk-000/file-001.parquet" in message and "org/tiny@main" in message
    assert "no such file" in message and "\n" not in message


def test_hub_failure_becomes_one_line_hub_error(monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'\nretrying...")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hf_hub_download", unreachable)
    monkeypatch.setattr(hub, "hub_answers", lambda *a, **k: True)  # the probe passed, then the download failed
    with pytest.raises(
        HubUnavailableError,
        match=r"^cannot fetch meta/info\.json of dataset lerobot/pusht@v2\.1 .*"
        r"ConnectionError: Failed to resolve 'huggingface\.co'\)$",
    ):
        open_dataset(repo_id="lerobot/pusht", revision="v2.1")


def test_hub_offline_without_cache_says_so(tmp_path: Path, monkeypatch):
    """Real huggingface_hub, empty cache, HF_HUB_OFFLINE=1: no network is touched."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        HubError, match=r"meta/info\.json of dataset lerobot/pusht@main .*offline: HF_HUB_OFFLINE"
    ):
        open_dataset(repo_id="lerobot/pusht")


def test_hub_offline_lists_episode_metadata_from_the_cache(fake_hub: FakeHub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "list_repo_tree", lambda *a: pytest.fail("listed the Hub while offline"))
    assert open_dataset(repo_id="org/tiny").episode_indices == [0, 1, 2]


# --- info command ------------------------------------------------------------------------------


def _invoke(*args: str):
    from click.testing import CliRunner

    from replay_check.cli.info import command

    return CliRunner().invoke(command, list(args))


def test_info_text_lists_format_features_cameras_tasks_and_no_profile(dataset_root: Path):
    result = _invoke("--root", str(dataset_root))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "fps: 10" in out and "episodes: 3, frames: 15" in out
    assert "observation.state" in out and "(3,)" in out
    assert f"{VIDEO}  32x48  libx264" in out and f"{IMAGE}  32x48  images in parquet" in out
    assert "Pull the block." in out
    assert "profile: none (" in out


def test_info_json_and_matching_profile(tmp_path: Path):
    root = write_dataset(
        tmp_path / "aloha",
        fps=50,
        lengths=(2,),
        robot_type="aloha",
        features={"observation.state": (14,), "action": (14,)},
        tasks=("Insert the peg into the socket.",),
    )
    result = _invoke("--root", str(root), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["codebase_version"] == "v3.0" and summary["robot_type"] == "aloha"
    assert summary["profile"] == "aloha-insertion" and summary["profile_error"] is None
    assert {"key": "action", "dtype": "float32", "shape": [14], "names": None} in summary["features"]


def test_info_bad_root_raises_dataset_error_and_help_has_examples(tmp_path: Path):
    result = _invoke("--root", str(tmp_path))
    assert isinstance(result.exception, DatasetError)
    assert "Examples:" in _invoke("--help").output


@pytest.mark.parametrize(
    ("version", "removed", "message"),
    [("v3.0", "meta/episodes", "no meta/episodes"), ("v2.1", "meta/episodes.jsonl", "lacks")],
)
def test_dataset_without_episode_metadata_is_rejected(
    tmp_path: Path, version: str, removed: str, message: str
):
    root = write_dataset(tmp_path / "ds", version=version, lengths=(2,))
    target = root / removed
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError, match=message):
        open_dataset(root=root)
