"""Frames at the first divergence: the PNGs are the frames compared at that step, made only when a run diverges."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import cv2
import numpy as np
import pytest

from replay_check import pipeline
from replay_check import replay as replay_module
from replay_check.divergence_frames import FrameCapture, recorded_frame
from replay_check.errors import OutputError
from replay_check.metrics import diff_image
from replay_check.pipeline import RunRequest, run_episode
from replay_check.profiles import available_profiles
from replay_check.replay import adapter_for, replay_episode
from replay_check.sims.base import InitialState, Pose
from replay_check.steps import ReplaySettings, SinkContext
from tests.sim_episodes import aloha_episode, pusht_episode

KEY = "observation.images.top"


def _digest(frame: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(frame).tobytes() + str(frame.shape).encode()).hexdigest()


class Compared:
    """A sink noting, per step, a digest of each recorded and replayed frame the comparison used."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.digests: dict[int, dict[str, tuple[str, str]]] = {}
        self.frames: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}

    def on_step(self, step, row):
        pairs = {k: (f, step.replayed_frames[k]) for k, f in step.recorded_frames.items()}
        if pairs:
            self.digests[step.t] = {k: (_digest(a), _digest(b)) for k, (a, b) in pairs.items()}
            if self.keep:
                self.frames[step.t] = {k: (a.copy(), b.copy()) for k, (a, b) in pairs.items()}

    def finish(self, result):
        pass


def _png(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint8, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_pngs(entry: dict, folder, compared: Compared) -> dict[str, bytes]:
    """The entry's PNGs are exactly the compared step's frames (and their diff); returns their bytes."""
    step = entry["step"]
    assert step in compared.digests
    out = {}
    for key, names in entry["images"].items():
        recorded, replayed, diff = (_png(folder / names[kind]) for kind in ("recorded", "replayed", "diff"))
        assert (_digest(recorded), _digest(replayed)) == compared.digests[step][key]
        assert np.array_equal(diff, diff_image(recorded, replayed)) and diff.any()
        out.update({names[kind]: (folder / names[kind]).read_bytes() for kind in ("recorded", "replayed", "diff")})
    return out


def _diverging(monkeypatch, from_step: int = 13) -> None:
    """Episodes load with the right arm's actions pushed off from `from_step` (the replay leaves the recording)."""
    load = pipeline.load_episode

    def perturbed(dataset, index, env_state_from):
        episode = load(dataset, index, env_state_from)
        actions = episode.action.copy()
        actions[from_step:, 8] += 0.4
        return dataclasses.replace(episode, action=actions)

    monkeypatch.setattr(pipeline, "load_episode", perturbed)


def _request(root, reports, **options) -> RunRequest:
    return RunRequest(root=root, mode="images", rerun=None, plots=False, ensemble=0, resync=0, report_dir=reports,
                      **options)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_diverging_run_writes_the_frames_it_compared_at_that_step(recorded_cube, tmp_path, monkeypatch, workers):
    """Recorded PNG == the decoded recorded frame of that step, replayed PNG == its render, bit for bit
    (with and without render workers); the entry and names are report.md's as before."""
    _diverging(monkeypatch)
    compared = Compared()
    outcome = run_episode(_request(recorded_cube, tmp_path, render_workers=workers, extra_sinks=(compared,)))
    assert outcome.result.step_loop["render_workers"] == workers
    report = json.loads((outcome.report_dir / "report.json").read_text())
    entry = report["extra"]["divergence_frames"]
    first = report["verdict"]["first_divergence_step"]
    assert first is not None and first > 0 and entry["step"] == first and entry["first_divergence_step"] == first
    assert entry["diff_gain"] == 4
    assert entry["images"] == {KEY: {kind: f"divergence_top_{kind}.png" for kind in ("recorded", "replayed", "diff")}}
    _check_pngs(entry, outcome.report_dir, compared)
    assert "![diff](divergence_top_diff.png)" in (outcome.report_dir / "report.md").read_text()
    assert not list(tmp_path.glob("*/.frames-*"))


def test_a_recorded_frame_is_the_row_the_sequential_decode_gives(recorded_cube):
    """Seeking to row t (GOP 2: keyframe or not) decodes the frame the comparison's sequential pass gave."""
    from replay_check.dataset import open_dataset
    from replay_check.dataset.video import VideoFrameSource

    source = open_dataset(root=recorded_cube).episode(0).cameras[KEY]
    assert isinstance(source, VideoFrameSource)
    for t, frame in enumerate(source.iter_frames(0)):
        assert np.array_equal(recorded_frame(source, t), frame), t


def test_a_passing_run_renders_and_writes_no_frames(recorded_cube, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a passing run rendered the frames at a divergence")

    monkeypatch.setattr(FrameCapture, "frames", fail)
    outcome = run_episode(_request(recorded_cube, tmp_path, render_workers=0))
    assert outcome.result.verdict.first_divergence_step is None
    assert not list(outcome.report_dir.glob("divergence_*.png"))
    assert "divergence_frames" not in json.loads((outcome.report_dir / "report.json").read_text())["extra"]


def test_a_write_that_fails_leaves_the_previous_report_as_it_was(recorded_cube, tmp_path, monkeypatch):
    _diverging(monkeypatch)
    first = run_episode(_request(recorded_cube, tmp_path, render_workers=0))
    before = {p.name: p.read_bytes() for p in first.report_dir.iterdir()}
    assert "divergence_top_recorded.png" in before
    monkeypatch.setattr("replay_check.divergence_frames.cv2.imwrite", lambda path, image: False)
    with pytest.raises(OutputError, match="cannot write the frame at the first divergence"):
        run_episode(_request(recorded_cube, tmp_path, render_workers=0))
    assert {p.name: p.read_bytes() for p in first.report_dir.iterdir()} == before
    assert not list(first.report_dir.parent.glob(".frames-*"))


def _aloha_case():
    profile = available_profiles()["aloha-transfer-cube"]
    cube = {"cube": Pose(np.array([0.05, 0.5, 0.05]))}
    episode = aloha_episode("transfer_cube", steps=14, seed=3, render=True, objects=cube, size=(240, 320))
    return episode, InitialState(episode.state[0], cube, "truth"), profile


def _pusht_case():
    episode, initial = pusht_episode(14)
    return episode, initial, available_profiles()["pusht"]


def _replay_with_capture(episode, initial, profile, workers, stride=1, keep=False):
    actions = episode.action.copy()
    actions[5:] += 0.4 if profile.name.startswith("aloha") else 40.0  # the replay leaves the recording at step 6
    episode = dataclasses.replace(episode, action=actions)
    capture, compared = FrameCapture(), Compared(keep)
    result = replay_episode(episode, profile, ReplaySettings(tolerances=profile.tolerances, image_stride=stride),
                            sinks=[compared, capture], probes=[capture], initial_state=initial,
                            render_workers=workers)
    return result, capture, compared


@pytest.mark.slow
@pytest.mark.parametrize(("case", "workers", "stride"),
                         [("aloha", 2, 1), ("pusht", 1, 1), ("pusht", 1, 3)])
def test_serial_pipelined_and_pusht_replays_write_the_same_exact_frames(case, workers, stride, tmp_path,
                                                                        monkeypatch):
    """The PNGs equal the compared frames, and are the same bytes with render workers (ALOHA's, or PushT's
    worker that steps the physics and returns the snapshot as a read) as without."""
    monkeypatch.setattr("replay_check.render_workers.available_cores", lambda: 2)
    # PushT's stepping worker takes over at step 2 (waiting for it), so it returns the later snapshots
    monkeypatch.setattr(replay_module._Handover, "up", lambda self, t: t >= 2 and (self.workers.ready(0) or True))
    episode, initial, profile = _aloha_case() if case == "aloha" else _pusht_case()
    written = []
    for count in (0, workers):
        result, capture, compared = _replay_with_capture(episode, initial, profile, count, stride)
        assert result.step_loop["render_workers"] == count
        if case == "pusht" and stride == 1:
            assert result.step_loop["steps_in_worker"] == (count == 1)  # the capture's probe declares its reads
            assert result.step_loop["worker_from_step"] == (2 if count == 1 else None)
        folder = tmp_path / f"{case}-{count}"
        folder.mkdir()
        entry, files = capture.write(result, folder)
        assert entry is not None and entry["step"] % stride == 0 and set(files) == {p.name for p in folder.iterdir()}
        assert abs(entry["step"] - result.verdict.first_divergence_step) < stride
        written.append((entry, _check_pngs(entry, folder, compared)))
    assert written[0] == written[1]


def _kept_bytes(value, seen=None) -> int:
    """Bytes of the arrays and buffers reachable from `value` (dicts, sequences, objects), each counted once."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, SinkContext):  # the context is the episode itself, not a copy
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, dict):
        return sum(_kept_bytes(k, seen) + _kept_bytes(v, seen) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return sum(_kept_bytes(v, seen) for v in value)
    if hasattr(value, "__dict__"):
        return _kept_bytes(vars(value), seen)
    return 0


def test_the_capture_keeps_a_snapshot_per_compared_step_not_frames():
    """Per compared step it keeps the simulator snapshot (~1 KB for ALOHA), not the frame pair (2 x 230 KB here)."""
    episode, initial, profile = _aloha_case()
    result, capture, compared = _replay_with_capture(episode, initial, profile, 0)
    frame_bytes = 240 * 320 * 3
    assert len(compared.digests) == episode.length and result.verdict.first_divergence_step is not None
    assert 0 < _kept_bytes(capture) < frame_bytes / 4  # the old capture's JPEGs: ~28 pairs of ~15 KB each
    adapter = adapter_for(episode, profile)
    try:
        (key, recorded, replayed), = capture.frames(7, adapter)
        assert key == KEY and _digest(replayed) == compared.digests[7][KEY][1]
    finally:
        adapter.close()
