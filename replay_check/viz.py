"""The Rerun recording of one replay: recorded | replayed | diff images and the curves that explain them.

Entity layout (timelines `frame_index` and `timestamp`):

    recorded/<camera>, replayed/<camera>, diff/<camera>     images, logged as each step arrives (recorded:
                                                            the dataset's own video stream when given)
    recorded/<camera>/objects, replayed/<camera>/objects    2-D object overlay (with a projector)
    joints/<joint>/recorded|replayed                        state trajectories
    objects/<object>/recorded|replayed                      positions as three scalars (x, y, z)
    errors/<metric column>                                  errors/group/left_arm, errors/image/<cam>/psnr
    reward/recorded|replayed, success/recorded|replayed
    events                                                  TextLog: divergences, blow-ups, the verdict

Images stream out in columns of IMAGE_BATCH_STEPS steps (a live viewer shows them that many steps late
at most; raw images go out per step); scalars are buffered and sent once with send_columns at finish,
which is two orders of magnitude cheaper than logging them per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from replay_check import gaps, viewer
from replay_check import metric_table as mt
from replay_check.errors import ConfigError, ViewerError  # noqa: F401  (ViewerError re-exported)
from replay_check.steps import ReplayResult, StepRecord
from replay_check.viewer import GRPC_PORT_DEFAULT, WEB_PORT_DEFAULT, web_viewer_url  # noqa: F401  (re-exported)

Projector = Callable[[str, np.ndarray], "tuple[float, float] | None"]
# step -> {"recorded"|"replayed": {"outline": [polyline (N,2) px], "points": [(u, v)]}} drawn over the images.
Overlay = Callable[[StepRecord], "dict[str, dict[str, list[np.ndarray]]]"]

RECORDED_COLOR = (76, 120, 168)  # blue
REPLAYED_COLOR = (245, 133, 24)  # orange
AXIS_COLORS = {"recorded": [(120, 160, 220), (70, 120, 190), (30, 70, 140)],
               "replayed": [(255, 190, 120), (245, 133, 24), (180, 80, 0)]}
SHADES = {"recorded": ((20, 60, 140), (140, 190, 245)), "replayed": ((170, 60, 0), (255, 200, 120))}
PALETTE = [(228, 26, 28), (55, 126, 184), (77, 175, 74), (152, 78, 163), (255, 127, 0), (166, 86, 40),
           (247, 129, 191), (153, 153, 153), (23, 190, 207), (188, 189, 34)]
MAX_LEGEND = 6  # more series than this and a legend covers the plot: names show on hover instead
LIMIT_COLOR = (120, 120, 120)
# Encoded images and video frame references are sent with send_columns every this many steps: one call per
# entity instead of a log call per step and entity (~0.1 ms each); a spawned or served viewer lags by at most
# this many steps (0.2 s at ALOHA's 50 fps, 1 s at PushT's 10 fps).
IMAGE_BATCH_STEPS = 10

# metric column -> entity path, for the columns that are not errors
_PLAIN_COLUMNS = {
    "reward": "reward/replayed",
    "recorded_reward": "reward/recorded",
    "success": "success/replayed",
    "recorded_success": "success/recorded",
}


def part(name: str) -> str:
    """One entity path part for a user-given name (camera keys, joints, objects)."""
    return rr.escape_entity_path_part(str(name))


def _camera_row(camera: str) -> rrb.Horizontal:
    c = part(camera)
    return rrb.Horizontal(
        rrb.Spatial2DView(origin=f"/recorded/{c}", name=f"recorded {camera}"),
        rrb.Spatial2DView(origin=f"/replayed/{c}", name=f"replayed {camera}"),
        rrb.Spatial2DView(origin=f"/diff/{c}", name=f"|recorded - replayed| x4 (white: >= 64/255) {camera}"),
        name=camera,
    )


def _series(name: str, paths: Sequence[str], *, legend: bool = True) -> rrb.TimeSeriesView:
    """A plot of `paths`; its legend sits top-left, or is hidden (names on hover) when it would cover the plot."""
    legend_box = rrb.PlotLegend(corner=rrb.Corner2D.LeftTop, visible=legend and len(paths) <= MAX_LEGEND)
    return rrb.TimeSeriesView(name=name, origin="/", contents=[f"+ /{p}" for p in paths], plot_legend=legend_box)


def _joint_views(joint_groups: Mapping[str, Sequence[str]] | None) -> list[rrb.TimeSeriesView]:
    if not joint_groups:
        return [rrb.TimeSeriesView(name="joints", origin="/joints")]
    return [_series(f"joints: {group} (recorded blue, replayed orange)", [f"joints/{part(j)}/**" for j in joints],
                    legend=False)
            for group, joints in joint_groups.items()]


def _error_path(metric: mt.Metric, name: str = "") -> str:
    return f"errors/{_column_path(metric.column(name))}"


def _limit_path(metric: mt.Metric, name: str = "") -> str:
    return f"limits/{_column_path(metric.column(name))}"


def _checked(metric: mt.Metric, names: Sequence[str]) -> list[str]:
    """A plot's error series and the tolerance line of each."""
    return [p for n in names for p in (_error_path(metric, n), _limit_path(metric, n))]


def _titled(title: str, unit: str) -> str:
    return f"{title} ({unit})" if unit else title


def _state_views(groups: Sequence[str], kinds: Mapping[str, str]) -> list[rrb.View]:
    """One plot per kind of state group, so radians and normalized grippers never share an axis."""
    by_kind: dict[str, list[str]] = {}
    for group in groups:
        by_kind.setdefault(kinds.get(group, ""), []).append(group)
    views: list[rrb.View] = []
    for kind, members in by_kind.items():
        metric = mt.state_group_metric(kind) if kind in mt.STATE_KINDS else mt.state_group_metric("arm")
        unit = metric.unit if kind in mt.STATE_KINDS else ""
        views.append(_series(_titled(f"{kind or 'state'} max |error| vs limit", unit), _checked(metric, members)))
    return views


def _error_views(cameras: Sequence[str], groups: Sequence[str], objects: Sequence[str], *,
                 kinds: Mapping[str, str] | None = None, object_units: str = "m",
                 planar: bool = False) -> tuple[list[rrb.View], list[rrb.View]]:
    """(checked errors with their tolerance lines, the other error curves), in the metric table's units."""
    checked = _state_views(groups, kinds or {})
    position = mt.object_position_metric(object_units)
    if objects:
        checked.append(_series(_titled("object position error vs limit", position.unit), _checked(position, objects)))
        if planar:
            checked.append(_series(_titled("object angle error vs limit", mt.OBJECT_ANGLE.unit),
                                   _checked(mt.OBJECT_ANGLE, objects)))
    if cameras:
        checked.append(_series("image PSNR (dB) vs limit; even/odd zig-zag: AV1 GOP-2 codec, not the replay",
                               _checked(mt.IMAGE_PSNR, cameras)))
    other: list[rrb.View] = [
        rrb.TimeSeriesView(name=f"{mt.JOINT.view} per joint, and RMS (mixed units)", origin="/",
                           contents=[f"+ /{_error_path(mt.JOINT).rstrip('/')}/**", f"+ /{_error_path(mt.STATE_RMS)}"],
                           plot_legend=rrb.PlotLegend(visible=False)),
    ]
    if cameras:
        other.append(_series("image SSIM", [_error_path(mt.IMAGE_SSIM, c) for c in cameras]))
        other.append(_series("image mean |diff| (0-255)", [_error_path(mt.IMAGE_MAD, c) for c in cameras]))
    return checked, other


def build_blueprint(
    cameras: Sequence[str],
    groups: Sequence[str],
    objects: Sequence[str],
    *,
    joint_groups: Mapping[str, Sequence[str]] | None = None,
    scene_views: Sequence[rrb.View] = (),
    kinds: Mapping[str, str] | None = None,
    object_units: str = "m",
    planar: bool = False,
) -> rrb.Blueprint:
    """The default layout: a recorded | replayed | diff row per camera (and the scene beside them) above
    tabs of curves and events.

    `joint_groups` (group -> joint names) splits the joint trajectories into one plot per group; `kinds`
    (group -> arm | gripper | agent) gives each kind of state error its own plot and unit.
    """
    checked, other = _error_views(cameras, groups, objects, kinds=kinds, object_units=object_units, planar=planar)
    object_views = [_series(f"object {o} position (x, y, z), recorded blue, replayed orange",
                            [f"objects/{part(o)}/**"]) for o in objects]
    task = [*object_views, _series("reward", ["reward/**"]), _series("success", ["success/**"])]
    curves = rrb.Horizontal(
        rrb.Tabs(*checked, name="errors vs limits"),
        rrb.Tabs(*other, name="more errors"),
        rrb.Tabs(*_joint_views(joint_groups), name="joints"),
        rrb.Tabs(*task, name="task"),
        rrb.TextLogView(name="events", origin="/events"),
        column_shares=[3, 2, 3, 2, 3],
    )
    if not cameras and not scene_views:
        return rrb.Blueprint(curves, collapse_panels=True)
    top: rrb.Container | rrb.View
    if cameras:
        top = rrb.Vertical(*[_camera_row(c) for c in cameras], name="images")
        if scene_views:
            top = rrb.Horizontal(top, *scene_views, column_shares=[3, *[1.2] * len(scene_views)])
    else:
        top = scene_views[0] if len(scene_views) == 1 else rrb.Horizontal(*scene_views)
    return rrb.Blueprint(rrb.Vertical(top, curves, row_shares=[3, 2]), collapse_panels=True)


def diff_for_view(recorded: np.ndarray, replayed: np.ndarray) -> np.ndarray:
    """|recorded - replayed| x4 (metrics.diff_image when available, so the video and viewer agree)."""
    try:
        from replay_check.metrics import diff_image
    except ImportError:
        diff = np.abs(recorded.astype(np.int16) - replayed.astype(np.int16)) * 4
        return np.clip(diff, 0, 255).astype(np.uint8)
    return diff_image(recorded, replayed)


def _jpeg(frame: np.ndarray, jpeg_quality: int | None) -> np.ndarray | None:
    """JPEG bytes via OpenCV (~1 ms at 480x640, 3x faster than rr.Image.compress); None (log it raw) when
    asked for raw images, when the frame is not RGB8 or when encoding fails."""
    if jpeg_quality is None or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        return None
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    return buf if ok else None


def time_columns(t, seconds) -> list[rr.TimeColumn]:
    """frame_index and timestamp columns for send_columns, on the nanosecond set_time gives each step.

    Rounded as set_time rounds: Rerun truncates a float array (4.1 s would land at 4099999999 ns, 1 ns
    before the images logged for that step).
    """
    ns = np.round(np.asarray(seconds, dtype=np.float64) * 1e9).astype(np.int64).astype("timedelta64[ns]")
    return [rr.TimeColumn("frame_index", sequence=t), rr.TimeColumn("timestamp", duration=ns)]


class _ImageColumns:
    """Per entity, the images, video frame references and image overlays of the steps not sent yet.

    They go out as the columns rr.log would have written row by row: the same components on the same
    frame_index / timestamp values (timestamps as Python floats, which Rerun rounds to ns as set_time does);
    only Rerun's own log_time / log_tick timelines, the wall clock of the call, are absent.
    """

    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, list[int], list[float], list]] = {}
        self.steps = 0

    def add(self, path: str, kind: str, t: int, timestamp: float, value) -> None:
        """Queue one row: kind "jpeg" (encoded bytes), "video" (frame ns), "strips" or "points"
        ((strips or (N, 2) positions, colour, radius), one colour and radius per row as rr.log writes them)."""
        entry = self.pending.setdefault(path, (kind, [], [], []))
        entry[1].append(int(t))
        entry[2].append(float(timestamp))
        entry[3].append(value)

    def send(self, rec: rr.RecordingStream) -> None:
        for path, (kind, t, ts, values) in self.pending.items():
            rec.send_columns(path, indexes=time_columns(t, ts), columns=_columns(kind, values))
        self.pending.clear()
        self.steps = 0


def _columns(kind: str, values: list) -> list:
    if kind == "video":
        return list(rr.VideoFrameReference.columns_nanos(values))
    if kind == "jpeg":
        return list(rr.EncodedImage.columns(blob=values, media_type=["image/jpeg"] * len(values)))
    archetype = rr.LineStrips2D if kind == "strips" else rr.Points2D
    style = list(archetype.columns(colors=[v[1] for v in values], radii=[v[2] for v in values]))
    if kind == "strips":
        shapes = archetype.columns(strips=[strip for v in values for strip in v[0]])
    else:
        shapes = archetype.columns(positions=np.concatenate([v[0] for v in values]))
    return [*shapes.partition([len(v[0]) for v in values]), *style]


class RerunSink:
    """A Sink writing one replay to a Rerun recording (.rrd file, spawned viewer and/or served web viewer)."""

    def __init__(
        self,
        *,
        application_id: str = "replay-check",
        recording_name: str,
        rrd_path: Path | None = None,
        spawn: bool = False,
        serve: bool = False,
        web_port: int | None = None,
        grpc_port: int | None = None,
        jpeg_quality: int | None = 75,
        cameras: Sequence[str],
        state_names: Sequence[str],
        groups: dict[str, tuple[int, int]],
        objects: Sequence[str],
        fps: float,
        projector: Projector | None = None,
        overlay: Overlay | None = None,
        recorded_videos: Mapping[str, tuple[bytes, int]] | None = None,
        scene=None,
        state_kinds: Mapping[str, str] | None = None,
        object_units: str = "m",
        planar: bool = False,
    ) -> None:
        if not (rrd_path or spawn or serve):
            raise ConfigError("RerunSink was given no output; expected rrd_path, spawn or serve")
        if spawn and serve:
            raise ConfigError("RerunSink was given both spawn and serve; expected one viewer")
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1-100 or None (raw), got {jpeg_quality}")
        self.cameras = list(cameras)
        self.state_names = list(state_names)
        self.objects = list(objects)
        self.fps = float(fps)
        self.jpeg_quality = jpeg_quality
        self.projector = projector
        self.overlay = overlay
        self.scene = scene  # a scene recorder (replay_check.scene3d) or None
        self.wants_body_poses = bool(getattr(scene, "wants_body_poses", False))
        self._url: str | None = None
        self._live = spawn or serve
        self._closed = False
        self._images = _ImageColumns()
        self._t: list[int] = []
        self._timestamps: list[float] = []
        self._recorded_state: list[np.ndarray] = []
        self._replayed_state: list[np.ndarray] = []
        self._objects: dict[tuple[str, str], list[tuple[int, np.ndarray]]] = {}
        joint_groups = {g: self.state_names[a:b] for g, (a, b) in groups.items()}
        self.joint_groups = joint_groups
        self.object_units, self.planar = object_units, planar
        self.blueprint = build_blueprint(self.cameras, list(groups), self.objects, joint_groups=joint_groups,
                                         scene_views=scene.views() if scene is not None else (),
                                         kinds=state_kinds, object_units=object_units, planar=planar)
        self.rec = rr.RecordingStream(application_id)
        sinks = self._sinks(rrd_path, spawn, serve, web_port, grpc_port)
        self.rec.set_sinks(*sinks, default_blueprint=self.blueprint)
        self.rec.send_recording_name(recording_name)
        self._log_styles()
        self._video_times = self._log_recorded_videos(recorded_videos or {})

    # ---- outputs -------------------------------------------------------------------------------------------

    def _sinks(self, rrd_path: Path | None, spawn: bool, serve: bool, web_port: int | None,
               grpc_port: int | None) -> list:
        """The recording's outputs: the .rrd file, and a viewer process from `replay_check.viewer`."""
        sinks: list = []
        if rrd_path is not None:
            Path(rrd_path).parent.mkdir(parents=True, exist_ok=True)
            sinks.append(rr.FileSink(str(rrd_path)))
        if serve:
            server, self._url = viewer.serve(web_port, grpc_port)
            sinks.append(server)
        if spawn:
            sinks.append(viewer.spawn(grpc_port, self.rec))
        return sinks

    @property
    def url(self) -> str | None:
        """The web viewer URL when serving (the caller prints it)."""
        return self._url

    # ---- styling (static, once) ----------------------------------------------------------------------------

    def _log_styles(self) -> None:
        """Recorded in one colour family (blues), replayed in another (oranges); a shade per joint of a group."""
        log = self.rec.log
        groups = self.joint_groups or {"": self.state_names}
        for joints in groups.values():
            for i, name in enumerate(joints):
                for source in ("recorded", "replayed"):
                    color = _shade(source, i, len(joints))
                    log(f"joints/{part(name)}/{source}",
                        rr.SeriesLines(colors=[color], widths=[1.5 if source == "recorded" else 2.5],
                                       names=[f"{name} {source}"]), static=True)
        for name in self.objects:
            for source in ("recorded", "replayed"):
                names = [f"{name} {a} {source} ({self.object_units})" for a in "xyz"]
                log(f"objects/{part(name)}/{source}",
                    rr.SeriesLines(colors=AXIS_COLORS[source], names=names,
                                   widths=[1.5 if source == "recorded" else 2.5] * 3), static=True)
        for path in _PLAIN_COLUMNS.values():
            source = path.rsplit("/", 1)[1]
            log(path, rr.SeriesLines(colors=[RECORDED_COLOR if source == "recorded" else REPLAYED_COLOR],
                                     names=[f"{path.split('/')[0]} {source}"]), static=True)

    def _log_recorded_videos(self, videos: Mapping[str, tuple[bytes, int]]) -> dict[str, np.ndarray]:
        """The dataset's own encoded stream per camera (an MP4 of the episode's packets and how many of its
        frames precede row 0), logged once: recorded frames are then referenced, not re-encoded as JPEG."""
        times = {}
        for camera, (mp4, skip) in videos.items():
            asset = rr.AssetVideo(contents=mp4, media_type="video/mp4")
            self.rec.log(f"recorded/{part(camera)}", asset, static=True)
            times[camera] = np.asarray(asset.read_frame_timestamps_nanos())[skip:]
        return times

    def _log_error_styles(self, declared: Mapping[str, mt.Column], columns: Sequence[str]) -> None:
        for i, column in enumerate(sorted(columns)):
            decl = declared.get(column)
            label = column if decl is None else _titled(decl.name or decl.metric.key, decl.metric.unit)
            self.rec.log(f"errors/{_column_path(column)}",
                         rr.SeriesLines(colors=[PALETTE[i % len(PALETTE)]], names=[label]), static=True)

    # ---- per step ------------------------------------------------------------------------------------------

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None:
        """Log this step's images now; keep its state and object positions for finish()."""
        self._t.append(step.t)
        self._timestamps.append(float(step.timestamp))
        self._recorded_state.append(np.asarray(step.recorded_state, dtype=np.float64).reshape(-1))
        self._replayed_state.append(np.asarray(step.replayed_state, dtype=np.float64).reshape(-1))
        self._keep_objects(step)
        if self.scene is not None:
            if not self.scene.wants_body_poses:  # a scene logged as it goes (planar)
                self._at(step.t, step.timestamp)
            self.scene.on_step(step, self.rec)
        if step.unstable:
            self._at(step.t, step.timestamp)
            self.rec.log("events", rr.TextLog(f"step {step.t}: simulation unstable: {step.unstable}",
                                              level=rr.TextLogLevel.ERROR))
        if step.recorded_frames or step.replayed_frames:
            self._at(step.t, step.timestamp)
            for camera in self.cameras:
                self._log_camera(camera, step)
            self._images.steps += 1
            if self._images.steps >= IMAGE_BATCH_STEPS:
                self._images.send(self.rec)

    def _log_shapes(self, c: str, shapes: dict[str, dict[str, list[np.ndarray]]], t: int, timestamp: float) -> None:
        """Recorded and replayed outlines drawn over both images, so each view shows where they differ."""
        colors = {"recorded": (40, 200, 40), "replayed": (230, 40, 40)}
        for source, parts in shapes.items():
            strips = parts.get("outline", [])
            points = parts.get("points", [])
            for image in ("recorded", "replayed"):
                if strips:
                    self._images.add(f"{image}/{c}/overlay/{source}", "strips", t, timestamp,
                                     (strips, colors[source], 0.4))
                if points:
                    self._images.add(f"{image}/{c}/overlay/{source}_points", "points", t, timestamp,
                                     (np.asarray(points, dtype=np.float64).reshape(-1, 2), colors[source], 1.5))

    def _at(self, t: int, timestamp: float) -> None:
        self.rec.set_time("frame_index", sequence=int(t))
        self.rec.set_time("timestamp", duration=float(timestamp))

    def _keep_objects(self, step: StepRecord) -> None:
        for source, positions in (("recorded", step.recorded_objects), ("replayed", step.replayed_objects)):
            for name, position in (positions or {}).items():
                if position is not None:
                    xyz = np.zeros(3)
                    flat = np.asarray(position, dtype=np.float64).reshape(-1)[:3]
                    xyz[: flat.size] = flat
                    self._objects.setdefault((name, source), []).append((step.t, xyz))

    def _log_camera(self, camera: str, step: StepRecord) -> None:
        c = part(camera)
        recorded = step.recorded_frames.get(camera)
        replayed = step.replayed_frames.get(camera)
        video_times = self._video_times.get(camera)
        if recorded is not None and video_times is not None and step.t < len(video_times):
            self._images.add(f"recorded/{c}", "video", step.t, step.timestamp, int(video_times[step.t]))
        elif recorded is not None:
            self._log_image(f"recorded/{c}", recorded, step)
        if replayed is not None:
            self._log_image(f"replayed/{c}", replayed, step)
        if recorded is not None and replayed is not None and recorded.shape == replayed.shape:
            self._log_image(f"diff/{c}", diff_for_view(recorded, replayed), step)
        if self.overlay is not None:
            self._log_shapes(c, self.overlay(step), step.t, step.timestamp)
        if self.projector is not None:
            for source, positions in (("recorded", step.recorded_objects),
                                      ("replayed", step.replayed_objects)):
                self._log_overlay(f"{source}/{c}/objects", positions, source)

    def _log_image(self, path: str, frame: np.ndarray, step: StepRecord) -> None:
        """A JPEG joins the next batch of columns; a raw image is logged now (at the step's time)."""
        encoded = _jpeg(frame, self.jpeg_quality)
        if encoded is None:
            self.rec.log(path, rr.Image(frame))
        else:
            self._images.add(path, "jpeg", step.t, step.timestamp, encoded.reshape(-1))

    def _log_overlay(self, path: str, positions: dict[str, np.ndarray] | None, source: str) -> None:
        names, uv = [], []
        for name, position in (positions or {}).items():
            point = None if position is None else self.projector(name, np.asarray(position))
            if point is not None:
                names.append(name)
                uv.append(point)
        if uv:
            color = RECORDED_COLOR if source == "recorded" else REPLAYED_COLOR
            self.rec.log(path, rr.Points2D(uv, labels=names, colors=[color], radii=[4.0]))

    # ---- at the end ----------------------------------------------------------------------------------------

    def finish(self, result: ReplayResult) -> None:
        """Send all curves in one go, log the divergence events, and flush (closing the file unless live)."""
        self._images.send(self.rec)
        if self._t:
            t = np.asarray(self._t, dtype=np.int64)
            ts = np.asarray(self._timestamps, dtype=np.float64)
            self._send_joints(t, ts)
            self._send_objects(dict(zip(self._t, self._timestamps, strict=True)))
            self._send_metrics(result, t, ts)
            if self.scene is not None:
                self.scene.finish(self.rec, time_columns(t, ts))
        self._log_events(result, dict(zip(self._t, self._timestamps, strict=True)))
        self._log_contacts(result, dict(zip(self._t, self._timestamps, strict=True)))
        self.rec.flush()
        if not self._live:
            self.close()

    def abort(self) -> None:
        """The replay failed: stop the outputs (the pipeline discards the partial .rrd)."""
        self.close()

    def close(self) -> None:
        """Stop all outputs (ends a served viewer's data; writes the .rrd footer)."""
        if not self._closed:
            self._closed = True
            self.rec.flush()
            self.rec.disconnect()

    def block_until_interrupted(self) -> None:
        """Keep a served/spawned viewer fed until Ctrl-C (the server dies with this process), then close."""
        try:
            while self._live and not self._closed:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def _send(self, path: str, t: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        self.rec.send_columns(path, indexes=time_columns(t, ts), columns=rr.Scalars.columns(scalars=values))

    def _send_joints(self, t: np.ndarray, ts: np.ndarray) -> None:
        for source, rows in (("recorded", self._recorded_state), ("replayed", self._replayed_state)):
            states = np.stack(rows)
            for j, name in enumerate(self.state_names[: states.shape[1]]):
                self._send(f"joints/{part(name)}/{source}", t, ts, states[:, j])

    def _send_objects(self, time_of: dict[int, float]) -> None:
        for (name, source), samples in self._objects.items():
            t = np.asarray([s[0] for s in samples], dtype=np.int64)
            ts = np.asarray([time_of[s[0]] for s in samples], dtype=np.float64)
            self._send(f"objects/{part(name)}/{source}", t, ts, np.stack([s[1] for s in samples]))

    def _declared(self, result: ReplayResult) -> dict[str, mt.Column]:
        state_names = self.state_names
        cameras = [c for c in self.cameras]
        try:
            found = mt.columns_for(result.profile, object_units=self.object_units, planar=self.planar,
                                   state_names=state_names, cameras=cameras)
        except Exception:  # a profile without state kinds: plot raw columns, no limits
            return {}
        return {c.column: c for c in found}

    def _send_metrics(self, result: ReplayResult, t: np.ndarray, ts: np.ndarray) -> None:
        """Every metric column in its declared unit, NaN at the start of each gap (the line breaks there),
        and a tolerance line for each checked column."""
        declared = self._declared(result)
        time_of = dict(zip(t.tolist(), ts.tolist(), strict=True))
        errors = []
        for column, all_values in result.metrics.items():
            full = np.asarray(all_values, dtype=np.float64)[: len(t)]
            decl = declared.get(column)
            if decl is not None and decl.metric.cap is not None:
                full = np.where(np.isposinf(full), decl.metric.cap, full)
            if decl is not None:
                full = full * decl.metric.scale
            steps = np.flatnonzero(np.isfinite(full))
            if steps.size == 0:
                continue
            breaks = [s for s in gaps.gap_starts(full).tolist() if s in time_of]
            steps = np.sort(np.concatenate([steps, np.asarray(breaks, dtype=np.int64)]))
            path = _PLAIN_COLUMNS.get(column)
            if path is None:
                path = f"errors/{_column_path(column)}"
                errors.append(column)
            self._send(path, t[steps], ts[steps], full[steps])
            if decl is not None and decl.group is not None and decl.metric.tolerance is not None:
                self._send_limit(decl, result, t, ts)
        self._log_error_styles(declared, errors)

    def _send_limit(self, decl: mt.Column, result: ReplayResult, t: np.ndarray, ts: np.ndarray) -> None:
        """The tolerance as a flat line over the whole episode (two points), in the column's unit."""
        try:
            limit = decl.limit(result.settings.tolerances)
        except (AttributeError, TypeError):
            return
        path = f"limits/{_column_path(decl.column)}"
        unit = f" {decl.metric.unit}" if decl.metric.unit else ""
        self.rec.log(path, rr.SeriesLines(colors=[LIMIT_COLOR], widths=[1.0],
                                          names=[f"limit {decl.name or decl.metric.key} = {limit:g}{unit}"]),
                     static=True)
        ends = np.asarray([0, len(t) - 1])
        self._send(path, t[ends], ts[ends], np.full(2, limit))

    def _log_events(self, result: ReplayResult, time_of: dict[int, float]) -> None:
        """Initial state at step 0, each group's first divergence with its numbers, the verdict with reasons."""
        first = self._t[0] if self._t else 0
        self._at(first, time_of.get(first, first / self.fps))
        self.rec.log("events", rr.TextLog(_initial_state_text(result), level=rr.TextLogLevel.INFO))
        source = getattr(result, "object_measurement", None)
        if source and source != "none":
            self.rec.log("events", rr.TextLog(f"recorded object poses: {source}", level=rr.TextLogLevel.INFO))
        verdict = result.verdict
        level = rr.TextLogLevel.ERROR if verdict.status == "fail" else rr.TextLogLevel.WARN
        details = getattr(result.divergence, "details", {})
        for group, step in sorted(result.divergence.items(), key=lambda kv: (kv[1] is None, kv[1] or 0)):
            if step is None:
                continue
            self._at(step, time_of.get(step, step / self.fps))
            onset = details.get(group)
            text = onset.describe() if onset is not None and hasattr(onset, "describe") else f"{group} diverges"
            marker = " (first divergence)" if step == verdict.first_divergence_step else ""
            self.rec.log("events", rr.TextLog(f"step {step}: {text}{marker}", level=level))
        last = self._t[-1] if self._t else 0
        self._at(last, time_of.get(last, last / self.fps))
        summary = f"verdict {verdict.status.upper()}" + "".join(f"; {r}" for r in verdict.reasons)
        status_level = {"pass": rr.TextLogLevel.INFO, "warn": rr.TextLogLevel.WARN}.get(verdict.status, level)
        self.rec.log("events", rr.TextLog(summary, level=status_level))


    def _log_contacts(self, result: ReplayResult, time_of: dict[int, float]) -> None:
        """Contact starts and ends (report.json extra.contacts) and the verdict's cause, as text events."""
        for row in result.contacts or []:
            pair = " - ".join(row["bodies"])
            for step, what in ((row["first"], "starts"), (row["last"], "ends")):
                self._at(step, time_of.get(step, step / self.fps))
                self.rec.log("events/contacts", rr.TextLog(f"step {step}: contact {pair} {what}",
                                                           level=rr.TextLogLevel.DEBUG))
        if result.verdict.cause:
            last = self._t[-1] if self._t else 0
            self._at(last, time_of.get(last, last / self.fps))
            evidence = f": {result.verdict.evidence[0]}" if result.verdict.evidence else ""
            self.rec.log("events", rr.TextLog(f"cause {result.verdict.cause}{evidence}", level=rr.TextLogLevel.WARN))


def _initial_state_text(result: ReplayResult) -> str:
    initial = result.initial_state
    text = f"initial state: {initial.method}"
    if initial.residual is not None:
        text += f" (residual {initial.residual:.3g})"
    poses = ", ".join(f"{name} at ({', '.join(f'{v:.3f}' for v in pose.position[:3])})"
                      for name, pose in (initial.objects or {}).items())
    return text + (f"; {poses}" if poses else "")


def _shade(source: str, i: int, n: int) -> tuple[int, int, int]:
    """Shade i of n in the source's colour family (dark to light)."""
    dark, light = SHADES[source]
    f = 0.0 if n <= 1 else i / (n - 1)
    return tuple(int(round(a + (b - a) * f)) for a, b in zip(dark, light, strict=True))  # type: ignore[return-value]


def _column_path(column: str) -> str:
    """A metric column name as an entity path below errors/ (its '/' separate path parts)."""
    return "/".join(part(p) for p in column.split("/"))
