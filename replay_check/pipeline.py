"""One episode end to end: open the dataset, pick the profile, replay, write report and recording.

`run` and `validate` both go through `run_episode`; the CLI only builds a RunRequest and prints.
`validate` resolves the configuration once (`replay_check.config`) and passes it in every RunRequest.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from replay_check import cause
from replay_check.config import ReplayConfig, ReplayOptions, dataset_source, resolve
from replay_check.config import resolve_settings as resolve_settings  # noqa: F401  (re-exported)
from replay_check.contacts import ContactTimeline
from replay_check.dataset import open_dataset
from replay_check.dataset.episode import Episode
from replay_check.divergence_frames import FrameCapture
from replay_check.errors import DatasetError, InputError, OutputError
from replay_check.families import family_of
from replay_check.fingerprint import episode_fingerprint
from replay_check.outputs import check_output_dir, check_output_file, check_video_path
from replay_check.profiles import Profile
from replay_check.provenance import STACK_INSTALLED
from replay_check.replay import PrestartedWorkers, abort_sinks, compared_cameras, replay_episode, start_render_workers
from replay_check.report import write_episode_report
from replay_check.steps import ReplayResult, ReplaySettings, Sink


@dataclass(frozen=True)
class RerunOptions:
    rrd_path: Path | None = None  # None: <episode report folder>/recording.rrd
    spawn: bool = False
    serve: bool = False
    web_port: int | None = None
    grpc_port: int | None = None
    jpeg_quality: int | None = 75
    scene: bool = True  # the simulator's 3-D (or planar) scene, where the family declares one


@dataclass(frozen=True)
class RunRequest(ReplayOptions):
    """One episode to replay, with the recording and video it should write.

    `config` is the resolved configuration when the caller already has it (validate hands every
    worker the batch's); None resolves it from these options.
    """

    episode: int = 0
    rerun: RerunOptions | None = field(default_factory=RerunOptions)
    video: Path | None = None
    extra_sinks: tuple[Sink, ...] = ()  # more sinks (e.g. a stack comparison's trajectory recorder)
    render_workers: int | None = None  # image mode's render processes; None: one per core, 0: serial
    config: ReplayConfig | None = None


@dataclass
class RunOutcome:
    result: ReplayResult
    report_dir: Path
    rrd_path: Path | None = None
    video_path: Path | None = None
    viewer_url: str | None = None
    viewer: Any = None  # the live RerunSink when spawning or serving (keep it alive to keep the viewer fed)


_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def open_twin(source: str):
    """A dataset given as a local folder (if it exists) or a hub repo id ("org/name"); else a clear error."""
    if Path(source).expanduser().exists():
        return open_dataset(root=Path(source).expanduser())
    if _REPO_ID.fullmatch(source) and not source.startswith((".", "~")):
        return open_dataset(repo_id=source)
    raise InputError(f"--env-state-from {source}: no such folder, and not a Hub repo id like org/name")


def attach_environment_state(episode: Episode, twin: Episode) -> Episode:
    """Take observation.environment_state from a twin dataset's same episode (lerobot/pusht + pusht_keypoints)."""
    if twin.environment_state is None:
        raise DatasetError(f"twin dataset {twin.meta.name} has no observation.environment_state")
    if twin.length != episode.length:
        raise DatasetError(
            f"twin dataset {twin.meta.name} episode {twin.index} has {twin.length} frames; "
            f"{episode.meta.name} episode {episode.index} has {episode.length}"
        )
    if not np.allclose(twin.state, episode.state, atol=1e-4):
        raise DatasetError(f"twin dataset {twin.meta.name} episode {twin.index} has different observation.state rows")
    return dataclasses.replace(episode, environment_state=twin.environment_state)


def episode_report_dir(report_dir: Path, dataset_folder: str, episode: int) -> Path:
    """<report dir>/<DatasetMeta.report_name>/episode_<NNNNNN>."""
    return Path(report_dir) / dataset_folder / f"episode_{episode:06d}"


def report_name(dataset_folder: str, stack: str | None) -> str:
    """The dataset's report folder: `<report_name>` on this environment, `<report_name>@<stack>` on another stack."""
    if stack in (None, STACK_INSTALLED):
        return dataset_folder
    return f"{dataset_folder}@{''.join(c if c.isalnum() or c in '-.=,+' else '_' for c in stack)}"


def load_episode(dataset, index: int, env_state_from: str | None) -> Episode:
    """Episode `index`, with environment_state from the twin dataset when one is named."""
    episode = dataset.episode(index)
    if env_state_from:
        episode = attach_environment_state(episode, open_twin(env_state_from).episode(index))
    return episode


def prepare_config(request: RunRequest) -> tuple[Episode, ReplayConfig]:
    """Load the episode and resolve the configuration unless the request carries it (input errors surface here)."""
    dataset = open_dataset(**dataset_source(request))
    config = request.config
    episode = load_episode(dataset, request.episode, config.env_state_from if config else request.env_state_from)
    return episode, config if config is not None else resolve(request, dataset.meta)


def prepare(request: RunRequest) -> tuple[Episode, Profile, ReplaySettings]:
    """(episode, profile, settings) of a request: prepare_config for callers that need only those."""
    episode, config = prepare_config(request)
    return episode, config.profile, config.settings


def _sinks(request: RunRequest, episode: Episode, config: ReplayConfig, rrd_tmp: Path | None,
           capture: FrameCapture | None = None) -> tuple[list[Sink], Any]:
    sinks: list[Sink] = []
    rerun_sink = None
    profile = config.profile
    cameras = compared_cameras(episode, config.settings)
    if request.rerun is not None:
        from replay_check.viz import RerunSink

        opts = request.rerun
        overlay = None
        make_overlay = family_of(profile).overlay
        if make_overlay is not None and cameras:
            source = episode.cameras[cameras[0]]
            overlay = make_overlay(source.height, source.width)
        scene = None
        make_scene = family_of(profile).scene
        if opts.scene and make_scene is not None:
            scene = make_scene(profile.task, tuple(profile.objects),
                               {key: profile.cameras[key] for key in cameras if key in profile.cameras})
        rerun_sink = RerunSink(
            recording_name=f"{episode.meta.name} episode {episode.index}",
            rrd_path=rrd_tmp,
            spawn=opts.spawn,
            serve=opts.serve,
            web_port=opts.web_port,
            grpc_port=opts.grpc_port,
            jpeg_quality=opts.jpeg_quality,
            cameras=cameras,
            state_names=list(episode.state_names or [f"state_{i}" for i in range(episode.state.shape[1])]),
            groups=profile.state_groups,
            objects=list(profile.objects),
            fps=episode.fps,
            overlay=overlay,
            recorded_videos=recorded_videos(episode, cameras) if opts.jpeg_quality is not None else None,
            scene=scene,
            state_kinds=profile.state_kinds,
            object_units=family_of(profile).object_units,
            planar=family_of(profile).planar,
        )
        sinks.append(rerun_sink)
    if request.video is not None:
        if not cameras:
            raise InputError("--video needs image mode and a dataset with a camera")
        from replay_check.video_export import VideoSink

        sinks.append(VideoSink(Path(request.video), fps=episode.fps, cameras=cameras))
    if capture is not None:
        sinks.append(capture)
    return sinks, rerun_sink


# Codecs every Rerun viewer decodes itself (the native viewer needs a system FFmpeg for H.264, the web one does not).
RERUN_PLAYS = ("av1",)


def recorded_videos(episode: Episode, cameras: list[str]) -> dict[str, tuple[bytes, int]]:
    """Per camera stored as AV1, the episode's packets as an MP4 of their own, for Rerun to show the recording
    as stored instead of re-encoding every decoded frame as JPEG."""
    from replay_check.dataset.video import VideoFrameSource

    videos = {}
    for key in cameras:
        source = episode.cameras[key]
        if isinstance(source, VideoFrameSource) and source.codec in RERUN_PLAYS:
            videos[key] = source.segment_mp4()
    return videos


def check_outputs(request: RunRequest) -> None:
    """Every output of this run can be written (checked before the replay, which takes minutes)."""
    check_output_dir("--report-dir", request.report_dir)
    if request.rerun is not None and request.rerun.rrd_path is not None:
        check_output_file("--rrd", request.rerun.rrd_path)
    if request.video is not None:
        check_video_path("--video", request.video)


def stack_name(request_stack: str | None, profile: Profile) -> str:
    """The stack's own name (`recorded` resolved through the profile); STACK_INSTALLED when none was asked for."""
    if request_stack in (None, STACK_INSTALLED):
        return STACK_INSTALLED
    from replay_check.stacks import resolve_name

    return resolve_name(request_stack, recorded=profile.recorded_stack).name


def _stack_adapter(request: RunRequest, episode: Episode, config: ReplayConfig):
    """(a proxy adapter, or None for the engine's in-process one; the StackInfo) for request.stack."""
    from replay_check.replay import sim_spec
    from replay_check.stacks.runner import open_adapter

    profile = config.profile
    return open_adapter(request.stack or STACK_INSTALLED, sim_spec(episode, profile, config.physics),
                        recorded=profile.recorded_stack, offline=request.offline)


def _cause_analysis(request: RunRequest, episode: Episode, config: ReplayConfig, stack, timeline: ContactTimeline
                    ) -> Callable[[ReplayResult], ReplayResult]:
    """The engine's `conclude` hook: contact timeline into the report, then `cause.run` on the same stack."""
    from replay_check.replay import sim_spec

    make = None
    if not stack.in_process:
        def make(spec):  # a fresh proxy on the replay's stack for each analysis pass
            return _stack_adapter(request, episode, config)[0]

    def conclude(result: ReplayResult) -> ReplayResult:
        result.contacts = timeline.to_list()
        return cause.run(result, episode, config.profile, sim_spec(episode, config.profile, config.physics),
                         make=make)[0]

    return conclude


def run_episode(request: RunRequest, progress: Callable[[int, int], None] | None = None) -> RunOutcome:
    """Replay one episode and write its report folder plus the requested recording/video.

    The report folder is replaced only once the new one is complete (recording included): a run that
    fails midway leaves the previous report as it was.

    Image mode's render workers start as soon as the episode and its configuration are known, so
    that their start (about a second of spawning, imports and a first render) overlaps this process's
    own set-up: the recording sinks (importing rerun, building the scene), the fingerprint, the
    adapter. On another stack they start with the replay, as the stack's interpreter is known only
    once its adapter is open (which builds the stack).
    """
    check_outputs(request)
    episode, config = prepare_config(request)
    stack_used = stack_name(request.stack, config.profile)
    timeline = ContactTimeline()  # a probe: whether a worker may step the physics depends on its reads
    capture = FrameCapture(config.physics) if compared_cameras(episode, config.settings) else None  # a probe and a sink
    probes = [timeline, *([capture] if capture is not None else [])]
    workers = None
    if stack_used == STACK_INSTALLED:
        workers = start_render_workers(episode, config.profile, config.settings,
                                       render_workers=request.render_workers, probes=probes)
    try:
        return _replay_and_report(request, episode, config, stack_used, timeline, capture, probes, workers, progress)
    finally:
        if workers is not None:
            workers.close()  # replay_episode closed them already, unless something failed before it took them


def _replay_and_report(request: RunRequest, episode: Episode, config: ReplayConfig, stack_used: str,
                       timeline: ContactTimeline, capture: FrameCapture | None, probes: list,
                       workers: PrestartedWorkers | None, progress: Callable[[int, int], None] | None) -> RunOutcome:
    """run_episode after the workers' start; `probes` are the ones the workers were planned with."""
    profile, settings = config.profile, config.settings
    fingerprint = episode_fingerprint(episode)
    out_dir = episode_report_dir(request.report_dir, report_name(episode.meta.report_name, stack_used), episode.index)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    rrd_final: Path | None = None
    rrd_tmp: Path | None = None
    if request.rerun is not None:
        rrd_final = Path(request.rerun.rrd_path or out_dir / "recording.rrd")
        tmp_dir = out_dir.parent if request.rerun.rrd_path is None else rrd_final.parent
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".recording-", suffix=".rrd.tmp", dir=tmp_dir)
        os.close(fd)
        rrd_tmp = Path(name)
        os.chmod(rrd_tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the recording is an output like the others
    sinks: list[Sink] = []
    rerun_sink = None
    frames_dir: Path | None = None
    try:
        sinks, rerun_sink = _sinks(request, episode, config, rrd_tmp, capture)
        for extra in request.extra_sinks:  # e.g. other stacks' lanes, logged into this recording
            bind = getattr(extra, "bind", None)
            if bind is not None:
                bind(rerun_sink)
        sinks = [*request.extra_sinks, *sinks]  # extra sinks finish before the recording closes
        adapter = None
        frames: tuple[dict[str, Any] | None, dict[str, Path]] = (None, {})
        try:
            try:
                adapter, stack = _stack_adapter(request, episode, config)
                result = replay_episode(episode, profile, settings, sinks=sinks, progress=progress, adapter=adapter,
                                        render_workers=request.render_workers, physics=config.physics,
                                        probes=probes, workers=workers,
                                        conclude=_cause_analysis(request, episode, config, stack, timeline))
            except BaseException:
                abort_sinks(sinks)  # the engine aborts its sinks too; this covers failures before it started
                raise
            if capture is not None and capture.nearest_step(result) is not None:  # while a stack's adapter is open
                frames_dir = Path(tempfile.mkdtemp(prefix=".frames-", dir=out_dir.parent))
                frames = capture.write(result, frames_dir, adapter)
        finally:
            if adapter is not None:
                adapter.close()
        result = dataclasses.replace(
            result, versions=result.versions if stack.in_process else dict(stack.versions), stack=stack.to_dict(),
            settings_hash=config.settings_hash, dataset_revision=request.revision, fingerprint=fingerprint,
            artifacts={"recording": str(rrd_final) if rrd_final else None,
                       "video": str(request.video) if request.video else None})
        moved_in = {}
        entry, files = frames
        if entry is not None:
            result.divergence_frames = entry
            moved_in.update(files)
        if rrd_tmp is not None and rrd_final is not None:
            if request.rerun.rrd_path is None:
                moved_in[rrd_final.name] = rrd_tmp  # goes into the new report folder before it is swapped in
            else:
                _replace(rrd_tmp, rrd_final, "--rrd")
        report_path = write_episode_report(result, out_dir, plots=request.plots, files=moved_in)
    finally:
        if rrd_tmp is not None and rrd_tmp.exists():
            rrd_tmp.unlink()
        if frames_dir is not None:
            shutil.rmtree(frames_dir, ignore_errors=True)
    return RunOutcome(
        result=result,
        report_dir=report_path,
        rrd_path=rrd_final,
        video_path=request.video,
        viewer_url=getattr(rerun_sink, "url", None),
        viewer=rerun_sink if request.rerun and (request.rerun.spawn or request.rerun.serve) else None,
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(tmp: Path, final: Path, what: str) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{what} {final}: cannot write it ({exc.strerror or exc})") from None
