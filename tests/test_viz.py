"""RerunSink, the blueprint and the `view` command, on synthetic steps (no simulator, no outside files)."""

from __future__ import annotations

from dataclasses import replace as dataclasses_replace
from pathlib import Path

import numpy as np
import pytest
import rerun.blueprint as rrb
from click.testing import CliRunner
from rerun.chunk import RrdReader

from replay_check.dataset.episode import DatasetMeta
from replay_check.errors import ConfigError
from replay_check.profiles import Profile, Tolerances
from replay_check.sims.base import InitialState
from replay_check.steps import ReplayResult, ReplaySettings, StepRecord, Verdict
from replay_check.viz import RerunSink, ViewerError, build_blueprint, web_viewer_url

CAM = "observation.images.top"
NAMES = ["left_waist", "left_gripper", "right_waist", "right_gripper"]
GROUPS = {"left_arm": (0, 1), "left_gripper": (1, 2), "right_arm": (2, 3), "right_gripper": (3, 4)}
KINDS = {"left_arm": "arm", "left_gripper": "gripper", "right_arm": "arm", "right_gripper": "gripper"}


def make_steps(n: int, *, stride: int = 1, size: tuple[int, int] = (48, 64)) -> list[StepRecord]:
    rng = np.random.default_rng(0)
    steps = []
    for t in range(n):
        recorded = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        replayed = recorded.copy()
        replayed[:8] = 0  # a visible difference
        with_images = t % stride == 0
        steps.append(StepRecord(
            t=t,
            timestamp=t / 50,
            recorded_state=np.full(4, 0.1 * t),
            replayed_state=np.full(4, 0.1 * t) + np.array([0.0, 0.01, 0.02, 0.03]),
            action=None if t == 0 else np.zeros(4),
            replayed_objects={"peg": np.array([0.1, 0.2, 0.05 + t])},
            recorded_objects={"peg": np.array([0.1, 0.2, 0.05])},
            recorded_frames={CAM: recorded} if with_images else {},
            replayed_frames={CAM: replayed} if with_images else {},
            reward=float(t),
        ))
    return steps


def make_result(n: int, divergence: dict[str, int | None], status: str = "fail") -> ReplayResult:
    meta = DatasetMeta(root=Path("synthetic"), codebase_version="v3.0", fps=50.0, robot_type="aloha",
                       total_episodes=1, total_frames=n, features={}, tasks=("test",))
    profile = Profile(name="synthetic", description="", adapter="aloha", task="insertion", env_id="",
                      fps=50.0, objects=("peg",), cameras={CAM: "top"}, state_groups=GROUPS, match={},
                      tolerances=Tolerances(), state_kinds=KINDS)
    group_err = np.linspace(0.0, 1.0, n)
    psnr = np.full(n, np.nan)
    psnr[0] = np.inf
    psnr[2 % n] = 30.0
    metrics = {"group/left_arm": group_err, "state_rms": group_err / 2, f"image/{CAM}/psnr": psnr,
               "reward": np.arange(n, dtype=float), "success": np.zeros(n)}
    first = min((s for s in divergence.values() if s is not None), default=None)
    return ReplayResult(meta=meta, episode_index=0, length=n, profile=profile, settings=ReplaySettings(),
                        initial_state=InitialState(robot=np.zeros(4), objects={}, method="environment_state"),
                        metrics=metrics, divergence=divergence, summary={},
                        verdict=Verdict(status, first, tuple(f"{g} diverges" for g in divergence)),
                        versions={})


def make_sink(tmp_path: Path, name: str = "rec.rrd", **kwargs) -> RerunSink:
    return RerunSink(recording_name="synthetic episode 0", rrd_path=tmp_path / name, cameras=[CAM],
                     state_names=NAMES, groups=GROUPS, objects=["peg"], fps=50.0, **kwargs)


def read_rrd(path: Path) -> dict[str, list]:
    """entity path -> list of record batches logged to it."""
    chunks: dict[str, list] = {}
    for chunk in RrdReader(path).stream():
        chunks.setdefault(chunk.entity_path, []).append(chunk.to_record_batch())
    return chunks


def column(batches: list, name: str) -> list:
    return [v for batch in batches if name in batch.schema.names for v in batch.column(name).to_pylist()]


def walk(node) -> list:
    found = [node]
    for child in getattr(node, "contents", None) or []:
        if not isinstance(child, str):
            found += walk(child)
    return found


def test_blueprint_puts_recorded_replayed_diff_side_by_side_per_camera():
    blueprint = build_blueprint([CAM, "observation.images.wrist"], ["left_arm", "right_arm"], ["peg"],
                                joint_groups={"left_arm": ["left_waist"], "right_arm": ["right_waist"]})
    assert isinstance(blueprint, rrb.Blueprint)
    nodes = walk(blueprint.root_container)
    rows = [n for n in nodes if isinstance(n, rrb.Horizontal)
            and all(isinstance(c, rrb.Spatial2DView) for c in n.contents)]
    origins = [[str(v.origin) for v in row.contents] for row in rows]
    assert origins == [[f"/recorded/{CAM}", f"/replayed/{CAM}", f"/diff/{CAM}"],
                       ["/recorded/observation.images.wrist", "/replayed/observation.images.wrist",
                        "/diff/observation.images.wrist"]]
    series = {str(n.name): n for n in nodes if isinstance(n, rrb.TimeSeriesView)}
    state_error = next(v for name, v in series.items() if name.startswith("state max |error|"))
    assert "+ /errors/group/left_arm" in state_error.contents
    assert "+ /limits/group/left_arm" in state_error.contents
    assert {"joints: left_arm (recorded blue, replayed orange)", "joints: right_arm (recorded blue, replayed orange)",
            "object peg position (x, y, z), recorded blue, replayed orange", "reward", "success"} <= set(series)
    assert any(isinstance(n, rrb.TextLogView) and str(n.origin) == "/events" for n in nodes)


def test_blueprint_without_cameras_has_no_image_views():
    nodes = walk(build_blueprint([], ["agent"], ["block"]).root_container)
    assert not any(isinstance(n, rrb.Spatial2DView) for n in nodes)
    assert any(isinstance(n, rrb.TimeSeriesView) and str(n.name) == "joints" for n in nodes)


def test_rrd_holds_images_curves_overlay_and_divergence_event(tmp_path):
    n, stride = 6, 2
    sink = make_sink(tmp_path, projector=lambda name, p: (float(p[0]) * 100, float(p[1]) * 100))
    for step in make_steps(n, stride=stride):
        sink.on_step(step, {})
    sink.finish(make_result(n, {"left_arm": 3, "right_arm": None}))
    path = tmp_path / "rec.rrd"
    assert path.stat().st_size > 0
    chunks = read_rrd(path)

    for source in ("recorded", "replayed", "diff"):
        frames = column(chunks[f"/{source}/{CAM}"], "frame_index")
        assert frames == [0, 2, 4], source  # images only on strided steps, at their frame index
    blobs = column(chunks[f"/replayed/{CAM}"], "EncodedImage:blob")
    assert bytes(blobs[0][0][:2]) == b"\xff\xd8"  # JPEG by default

    replayed = chunks["/joints/right_gripper/replayed"]
    assert column(replayed, "frame_index") == list(range(n))
    values = [v[0] for v in column(replayed, "Scalars:scalars")]
    np.testing.assert_allclose(values, 0.1 * np.arange(n) + 0.03)
    assert column(chunks["/objects/peg/replayed"], "Scalars:scalars")[2] == pytest.approx([0.1, 0.2, 2.05])

    assert len(column(chunks["/errors/group/left_arm"], "Scalars:scalars")) == n
    psnr = column(chunks[f"/errors/image/{CAM}/psnr"], "Scalars:scalars")
    assert [v[0] for v in psnr] == [100.0, 30.0]  # NaN steps dropped, +inf capped
    assert len(column(chunks["/reward/replayed"], "Scalars:scalars")) == n

    overlay = chunks[f"/recorded/{CAM}/objects"]
    assert column(overlay, "Points2D:labels")[0] == ["peg"]
    assert column(overlay, "Points2D:positions")[0] == [pytest.approx([10.0, 20.0])]

    events = chunks["/events"]
    texts = [v[0] for v in column(events, "TextLog:text")]
    levels = [v[0] for v in column(events, "TextLog:level")]
    at = texts.index("step 3: left_arm diverges (first divergence)")
    assert levels[at] == "ERROR"
    assert column(events, "frame_index")[at] == 3
    assert any(text.startswith("verdict FAIL") for text in texts)


def test_state_kinds_get_their_own_plot_unit_and_tolerance_line(tmp_path):
    nodes = walk(build_blueprint([CAM], list(GROUPS), ["peg"], kinds=KINDS).root_container)
    names = {str(n.name) for n in nodes if isinstance(n, rrb.TimeSeriesView)}
    assert {"arm max |error| vs limit (rad)", "gripper max |error| vs limit ((normalized))",
            "object position error vs limit (mm)"} <= names
    sink = make_sink(tmp_path, state_kinds=KINDS)
    for step in make_steps(4):
        sink.on_step(step, {})
    sink.finish(make_result(4, {}, "pass"))
    chunks = read_rrd(tmp_path / "rec.rrd")
    limit = chunks["/limits/group/left_arm"]
    assert column(limit, "frame_index") == [0, 3]
    assert [v[0] for v in column(limit, "Scalars:scalars")] == [Tolerances().arm_rad] * 2
    assert column(limit, "SeriesLines:names") == [["limit left_arm = 0.05 rad"]]
    assert column(chunks["/errors/group/left_arm"], "SeriesLines:names") == [["left_arm (rad)"]]


def test_object_error_in_mm_with_gaps_as_gaps(tmp_path):
    n = 8
    sink = make_sink(tmp_path, state_kinds=KINDS)
    for step in make_steps(n):
        sink.on_step(step, {})
    result = make_result(n, {}, "pass")
    error_m = np.array([0.001, 0.002, np.nan, np.nan, 0.003, 0.004, np.nan, 0.005])
    result.metrics["object_err/peg"] = error_m
    sink.finish(result)
    chunks = read_rrd(tmp_path / "rec.rrd")
    series = chunks["/errors/object_err/peg"]
    # one NaN where each gap starts breaks the line; the rest of the gap is simply absent
    assert column(series, "frame_index") == [0, 1, 2, 4, 5, 6, 7]
    values = [v[0] for v in column(series, "Scalars:scalars")]
    np.testing.assert_allclose(values, [1.0, 2.0, np.nan, 3.0, 4.0, np.nan, 5.0])  # millimetres
    limit = [v[0] for v in column(chunks["/limits/object_err/peg"], "Scalars:scalars")]
    assert limit == [Tolerances().object_mm] * 2


def test_events_say_the_initial_state_and_why_a_group_diverged(tmp_path):
    from replay_check.divergence import Divergences, Onset
    from replay_check.sims.base import Pose

    sink = make_sink(tmp_path, state_kinds=KINDS)
    for step in make_steps(6):
        sink.on_step(step, {})
    result = make_result(6, {"left_arm": 2}, "fail")
    result.divergence = Divergences({"left_arm": 2}, {"left_arm": Onset("left_arm", 2, 0.2, 0.05, "rad", 5,
                                                                        "|error|")})
    result.initial_state = InitialState(robot=np.zeros(4), objects={"peg": Pose(np.array([0.1, 0.5, 0.05]))},
                                        method="estimated", residual=3.0)
    sink.finish(result)
    events = read_rrd(tmp_path / "rec.rrd")["/events"]
    texts = [v[0] for v in column(events, "TextLog:text")]
    assert texts[0] == "initial state: estimated (residual 3); peg at (0.100, 0.500, 0.050)"
    assert column(events, "frame_index")[0] == 0
    assert any(t.startswith("step 2: left_arm diverges at step 2: |error| 0.2 rad > limit 0.05 rad") and
               t.endswith("(first divergence)") for t in texts)


def test_raw_images_when_jpeg_disabled_and_sinks_do_not_mix(tmp_path):
    a = make_sink(tmp_path, "a.rrd", jpeg_quality=None)
    b = make_sink(tmp_path, "b.rrd")
    steps_a, steps_b = make_steps(2), make_steps(4)
    for i in range(4):  # interleaved, as two replays in one process would be
        if i < 2:
            a.on_step(steps_a[i], {})
        b.on_step(steps_b[i], {})
    a.finish(make_result(2, {}, "pass"))
    b.finish(make_result(4, {}, "pass"))
    chunks_a, chunks_b = read_rrd(tmp_path / "a.rrd"), read_rrd(tmp_path / "b.rrd")
    assert column(chunks_a[f"/replayed/{CAM}"], "frame_index") == [0, 1]
    assert column(chunks_a[f"/replayed/{CAM}"], "Image:buffer")  # raw, not encoded
    assert column(chunks_b[f"/replayed/{CAM}"], "frame_index") == [0, 1, 2, 3]
    texts = column(chunks_a["/events"], "TextLog:text")
    assert texts == [["initial state: environment_state"], ["verdict PASS"]]


def test_sink_needs_an_output_and_one_viewer(tmp_path):
    common = dict(recording_name="x", cameras=[], state_names=NAMES, groups=GROUPS, objects=[], fps=50.0)
    with pytest.raises(ConfigError, match="no output"):
        RerunSink(**common)
    with pytest.raises(ConfigError, match="both spawn and serve"):
        RerunSink(spawn=True, serve=True, **common)
    with pytest.raises(ConfigError, match="jpeg_quality"):
        RerunSink(rrd_path=tmp_path / "x.rrd", jpeg_quality=0, **common)


def test_spawn_without_display_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ViewerError, match="no display.*--serve"):
        make_sink(tmp_path, spawn=True)


def test_block_until_interrupted_closes_the_recording_on_ctrl_c(tmp_path, monkeypatch):
    sink = make_sink(tmp_path)
    sink._live = True  # as when serving; no ports are bound in tests

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("replay_check.viz.time.sleep", interrupt)
    sink.finish(make_result(1, {}, "pass"))
    assert not sink._closed  # a live viewer keeps the recording open after finish
    sink.block_until_interrupted()
    assert sink._closed
    assert "/events" in read_rrd(tmp_path / "rec.rrd")


def test_web_viewer_url_points_the_browser_at_the_local_grpc_server():
    url = web_viewer_url("rerun+http://0.0.0.0:9876/proxy", 9090)
    assert url == "http://127.0.0.1:9090/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A9876%2Fproxy"


# ---- replay-check view ------------------------------------------------------------------------------------


@pytest.fixture
def view_command():
    from replay_check.cli.view import command

    return command


def test_view_rejects_a_missing_or_foreign_file(view_command, tmp_path):
    result = CliRunner().invoke(view_command, [str(tmp_path / "missing.rrd")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    other = tmp_path / "notes.rrd"
    other.write_text("hello")
    result = CliRunner().invoke(view_command, [str(other)])
    assert result.exit_code == 2
    assert "not a Rerun recording" in result.output


def test_view_help_has_examples(view_command):
    result = CliRunner().invoke(view_command, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "replay-check view" in result.output


def test_view_runs_the_rerun_cli_on_the_file(view_command, tmp_path, monkeypatch):
    sink = make_sink(tmp_path)
    sink.finish(make_result(1, {}, "pass"))
    calls = []
    monkeypatch.setattr("subprocess.call", lambda argv: calls.append(argv) or 0)
    result = CliRunner().invoke(view_command, [str(tmp_path / "rec.rrd"), "--web", "--web-port", "9191"])
    assert result.exit_code == 0, result.output
    rrd = str(tmp_path / "rec.rrd")
    from replay_check.cli.view import rerun_command

    assert calls[0] == [*rerun_command(), rrd, "--serve-web", "--bind", "127.0.0.1",
                            "--web-viewer-port", "9191", "--port", "9876"]
    assert "http://127.0.0.1:9191" in result.output
    result = CliRunner().invoke(view_command, [rrd, "--web", "--bind", "0.0.0.0", "--grpc-port", "9877"])
    assert calls[1][-6:] == ["--bind", "0.0.0.0", "--web-viewer-port", "9090", "--port", "9877"]
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = CliRunner().invoke(view_command, [str(tmp_path / "rec.rrd")])
    assert result.exit_code == 2  # a usage problem: --web is the way without a display
    assert "--web" in result.output


def test_recorded_frames_reference_the_datasets_own_video_instead_of_jpeg(tmp_path):
    from replay_check.dataset.video import VideoFrameSource
    from tests.dataset_factory import write_video

    mp4 = write_video(tmp_path / "file-000.mp4", [(0, 3), (1, 6)], 50, (48, 64), gop=2)
    source = VideoFrameSource(mp4, fps=50, length=6, from_timestamp=3 / 50)
    data, skip = source.segment_mp4()
    sink = make_sink(tmp_path, recorded_videos={CAM: (data, skip)})
    for step in make_steps(6, stride=2):
        sink.on_step(step, {})
    sink.finish(make_result(6, {}))
    chunks = read_rrd(tmp_path / "rec.rrd")
    recorded = chunks[f"/recorded/{CAM}"]
    assert bytes(column(recorded, "AssetVideo:blob")[0][0]) == data
    assert column(recorded, "EncodedImage:blob") == []  # nothing re-encoded
    assert [v for v in column(recorded, "frame_index") if v is not None] == [0, 2, 4]
    # Row t is frame skip + t of the copy, 1/50 s apart.
    stamps = [v[0] for v in column(recorded, "VideoFrameReference:timestamp")]
    assert stamps == [int(round((skip + t) * 1e9 / 50)) for t in (0, 2, 4)]
    assert column(chunks[f"/replayed/{CAM}"], "EncodedImage:blob")  # replayed frames stay images


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from /proc")
def test_view_web_serves_on_localhost_only(tmp_path):
    """The real rerun CLI, as `view --web` starts it, listens on 127.0.0.1 and nowhere else."""
    import subprocess
    import time

    from replay_check.cli.view import viewer_argv

    sink = make_sink(tmp_path)
    sink.finish(make_result(1, {}, "pass"))
    web, grpc = _free_port(), _free_port()
    proc = subprocess.Popen(viewer_argv(tmp_path / "rec.rrd", web=True, web_port=web, grpc_port=grpc),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _listening_addresses(web) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        addresses = _listening_addresses(web) | _listening_addresses(grpc)
        assert addresses, "the web viewer never listened"
        assert addresses == {"0100007F"}  # 127.0.0.1 in /proc's little-endian hex
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pusht_scene_draws_recorded_and_replayed_t_and_agent_in_arena_pixels(tmp_path):
    from replay_check.families import family

    scene = family("pusht").scene("pusht", ("block",), {})
    sink = RerunSink(recording_name="pusht", rrd_path=tmp_path / "p.rrd", cameras=[], state_names=["x", "y"],
                     groups={"agent": (0, 2)}, objects=["block"], fps=10.0, scene=scene,
                     state_kinds={"agent": "agent"}, object_units="px", planar=True)
    for t in range(3):
        sink.on_step(StepRecord(t=t, timestamp=t / 10, recorded_state=np.array([100.0, 200.0]),
                                replayed_state=np.array([100.0 + t, 200.0]), action=None,
                                replayed_objects={"block": np.array([256.0 + t, 256.0])},
                                recorded_objects={"block": np.array([256.0, 256.0])},
                                recorded_object_angles={"block": 0.0}, replayed_object_angles={"block": 0.1 * t}),
                     {})
    sink.finish(make_result(3, {}, "pass"))
    chunks = read_rrd(tmp_path / "p.rrd")
    assert column(chunks["/scene2d/replayed/agent"], "frame_index") == [0, 1, 2]
    assert column(chunks["/scene2d/replayed/agent"], "Points2D:positions")[2] == [pytest.approx([102.0, 200.0])]
    outline = column(chunks["/scene2d/recorded/block"], "LineStrips2D:strips")[0]
    assert len(outline) == 2  # the T's bar and stem
    nodes = walk(sink.blueprint.root_container)
    assert any(isinstance(n, rrb.Spatial2DView) and str(n.origin) == "/scene2d" for n in nodes)


def _flipped_steps(n: int) -> list[StepRecord]:
    """Steps whose renders arrive as flipped views (as from the simulators), a different picture each step."""
    steps = make_steps(n)
    for step in steps:
        render = step.replayed_frames[CAM]
        render[8 + step.t] = 255  # a different picture each step
        step.replayed_frames[CAM] = np.ascontiguousarray(render[::-1])[::-1]
    return steps


@pytest.mark.parametrize("jpeg_quality", [75, None])
def test_each_step_logs_its_own_images_though_the_sink_reuses_buffers(tmp_path, jpeg_quality):
    """The replayed and diff images of every step are that step's (a kept buffer must not leak into an
    earlier step's logged data, raw or JPEG); the JPEG bytes are OpenCV's encoding of the frames."""
    import cv2

    from replay_check.metrics import diff_image

    sink = make_sink(tmp_path, jpeg_quality=jpeg_quality)
    steps = _flipped_steps(3)
    for step in steps:
        sink.on_step(step, {})
    sink.finish(make_result(3, {}, "pass"))
    chunks = read_rrd(tmp_path / "rec.rrd")
    for entity, frames in (("replayed", [s.replayed_frames[CAM] for s in steps]),
                           ("diff", [diff_image(s.recorded_frames[CAM], np.ascontiguousarray(s.replayed_frames[CAM]))
                                     for s in steps])):
        if jpeg_quality is None:
            logged = [bytes(np.asarray(b, dtype=np.uint8)) for b in column(chunks[f"/{entity}/{CAM}"], "Image:buffer")]
            assert logged == [np.ascontiguousarray(f).tobytes() for f in frames], entity
        else:
            logged = [bytes(np.asarray(b, dtype=np.uint8)) for b in
                      column(chunks[f"/{entity}/{CAM}"], "EncodedImage:blob")]
            expected = [cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR),
                                     [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])[1].tobytes() for f in frames]
            assert logged == expected, entity
        assert len(set(logged)) == 3


def test_images_go_out_in_columns_on_the_times_set_time_would_give(tmp_path):
    """JPEGs and video frame references are sent every IMAGE_BATCH_STEPS steps and at finish, on the same
    frame_index and timestamp (ns, rounded as set_time rounds: step 2 at 30 fps is 66666667, not 66666666)."""
    import dataclasses

    from replay_check import viz

    n = 2 * viz.IMAGE_BATCH_STEPS + 9
    sink = make_sink(tmp_path)
    for step in make_steps(n):
        step = dataclasses.replace(step, timestamp=step.t / 30)
        sink.on_step(step, {})
        pending = sum(len(entry[1]) for entry in sink._images.pending.values())
        assert pending == 3 * sink._images.steps  # recorded, replayed, diff
        assert sink._images.steps == (step.t + 1) % viz.IMAGE_BATCH_STEPS  # the viewer is never further behind
    sink.finish(make_result(n, {}, "pass"))
    chunks = read_rrd(tmp_path / "rec.rrd")
    for entity in ("recorded", "replayed", "diff"):
        batches = chunks[f"/{entity}/{CAM}"]
        assert column(batches, "frame_index") == list(range(n))
        nanos = [b.column("timestamp").cast("int64").to_pylist() for b in batches if "timestamp" in b.schema.names]
        assert [v for part in nanos for v in part] == [round(1e9 * (t / 30)) for t in range(n)]
        assert len(column(batches, "EncodedImage:blob")) == n


def test_curves_sit_on_the_same_nanosecond_as_the_images_of_their_step(tmp_path):
    """A curve point and the images of its step share one timestamp (4.1 s is 4099999999.9999995 ns as a float:
    rounded, not truncated, so scrubbing to an image lands on its curve values)."""
    import dataclasses

    n = 60
    sink = make_sink(tmp_path)
    for step in make_steps(n):
        sink.on_step(dataclasses.replace(step, timestamp=step.t / 10), {})
    sink.finish(make_result(n, {}, "pass"))
    chunks = read_rrd(tmp_path / "rec.rrd")
    images = dict(zip(_values(chunks[f"/recorded/{CAM}"], "frame_index"),
                      _values(chunks[f"/recorded/{CAM}"], "timestamp"), strict=True))
    curves = [path for path in chunks if path.startswith("/joints/")]
    assert curves
    for path in curves:
        frames, stamps = _values(chunks[path], "frame_index"), _values(chunks[path], "timestamp")
        assert dict(zip(frames, stamps, strict=True)) == {t: images[t] for t in frames}, path
    assert images[41] == 4_100_000_000


def _values(batches: list, name: str) -> list:
    """A column's values over all batches (durations as int ns)."""
    return [v for b in batches if name in b.schema.names
            for v in (b.column(name).cast("int64") if name == "timestamp" else b.column(name)).to_pylist()]


def test_overlay_columns_hold_what_per_step_log_calls_would(tmp_path):
    """Outlines and points over the images, sent in columns, equal a recording logged row by row with
    rr.log: per step its own number of strips and points, one colour and one radius."""
    import rerun as rr

    def shapes(step: StepRecord) -> dict[str, dict[str, list]]:
        k = step.t % 3
        return {"recorded": {"outline": [np.array([[0.0, 0.0], [5.0, step.t]])] * (k + 1), "points": [(1.0, 2.0)] * k},
                "replayed": {"outline": [np.array([[1.0, 1.0], [step.t, 7.0], [3.0, 3.0]])], "points": [(k, 4.0)]}}

    n = 13  # more than one batch of columns
    sink = make_sink(tmp_path, overlay=shapes)
    steps = [dataclasses_replace(s, timestamp=s.t / 30) for s in make_steps(n)]
    for step in steps:
        sink.on_step(step, {})
    sink.finish(make_result(n, {}, "pass"))
    reference = rr.RecordingStream("reference")
    reference.set_sinks(rr.FileSink(str(tmp_path / "ref.rrd")))
    colors = {"recorded": (40, 200, 40), "replayed": (230, 40, 40)}
    for step in steps:
        reference.set_time("frame_index", sequence=step.t)
        reference.set_time("timestamp", duration=step.timestamp)
        for source, parts in shapes(step).items():
            for image in ("recorded", "replayed"):
                reference.log(f"{image}/{CAM}/overlay/{source}",
                              rr.LineStrips2D(parts["outline"], colors=colors[source], radii=0.4))
                if parts["points"]:
                    reference.log(f"{image}/{CAM}/overlay/{source}_points",
                                  rr.Points2D(np.asarray(parts["points"]), colors=colors[source], radii=1.5))
    reference.flush()
    reference.disconnect()
    ours, theirs = read_rrd(tmp_path / "rec.rrd"), read_rrd(tmp_path / "ref.rrd")
    paths = [p for p in theirs if "/overlay/" in p]
    assert len(paths) == 8
    for path in paths:
        names = {name for b in theirs[path] for name in b.schema.names
                 if not any(k in name for k in ("log_time", "log_tick", "RowId"))}
        assert {"frame_index", "timestamp", "LineStrips2D:strips", "Points2D:positions"} & names
        for name in names:
            assert _values(ours[path], name) == _values(theirs[path], name), (path, name)
