"""The replay engine: restore an episode's initial state, re-execute its actions, compare step by step.

No I/O of its own: frames come from the Episode's sources, results go to sinks (Rerun, video) and
back to the caller as a ReplayResult. Step t compares recorded row t with the simulator after
actions 0..t-1, so step 0 checks the restored initial state itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from replay_check import alignment, divergence, metrics
from replay_check.dataset.episode import Episode
from replay_check.errors import InputError
from replay_check.families import family_of
from replay_check.initial_state import FrameObjectMeter, object_measure, recover_initial_state
from replay_check.profiles import Profile
from replay_check.report import versions
from replay_check.sims import make_adapter
from replay_check.sims.base import InitialState, Pose, SimAdapter, SimSpec
from replay_check.steps import ReplayResult, ReplaySettings, Sink, StepRecord

Progress = Callable[[int, int], None]


def validate_episode(episode: Episode, profile: Profile, settings: ReplaySettings) -> list[str]:
    """Raise InputError for an episode the profile cannot replay; return the cameras to compare."""
    if episode.length < 2:
        raise InputError(f"episode {episode.index} has {episode.length} frame(s); a replay needs at least 2")
    for name, array, dim in (("observation.state", episode.state, profile.state_dim),
                             ("action", episode.action, profile.action_dim)):
        if dim and array.shape[1:] != (dim,):
            raise InputError(
                f"{name} has width {array.shape[1] if array.ndim == 2 else array.shape}; "
                f"profile {profile.name!r} expects {dim}"
            )
    bad = ~np.isfinite(episode.action)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(f"action has a non-finite value ({episode.action[row, col]}) at frame {row}, column {col}")
    if not np.all(np.isfinite(episode.state)):
        row = int(np.argwhere(~np.isfinite(episode.state))[0][0])
        raise InputError(f"observation.state has a non-finite value at frame {row}")
    if settings.image_stride < 1:
        raise InputError(f"image stride must be >= 1, got {settings.image_stride}")
    if settings.mode not in ("images", "state"):
        raise InputError(f"mode must be 'images' or 'state', got {settings.mode!r}")
    unmapped = [key for key in episode.cameras if key not in profile.cameras]
    if unmapped and settings.mode == "images":
        raise InputError(
            f"dataset camera {unmapped[0]!r} has no simulator camera in profile {profile.name!r} "
            f"(mapped: {', '.join(profile.cameras) or 'none'})"
        )
    return list(episode.cameras) if settings.mode == "images" else []


def sim_spec(episode: Episode, profile: Profile, physics: dict[str, float] | None = None) -> SimSpec:
    """The SimSpec rendering every mapped camera at the dataset's resolution."""
    sizes = {}
    for key, sim_camera in profile.cameras.items():
        if key in episode.cameras:
            sizes[sim_camera] = (episode.cameras[key].height, episode.cameras[key].width)
    return SimSpec(family=profile.adapter, task=profile.task, cameras=sizes, physics=dict(physics or {}),
                   module=profile.family_module)


def adapter_for(episode: Episode, profile: Profile, physics: dict[str, float] | None = None) -> SimAdapter:
    """An adapter rendering every mapped camera at the dataset's resolution."""
    return make_adapter(sim_spec(episode, profile, physics))


@dataclass
class _Timer:
    """Accumulates wall time per phase, for the benchmark's per-step breakdown."""

    totals: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.totals[phase] = self.totals.get(phase, 0.0) + (now - since)
        return now


def _planar_angles(poses: dict[str, Pose | None] | None) -> dict[str, float] | None:
    if not poses:
        return None
    return {name: pose.yaw for name, pose in poses.items() if pose is not None}


def _positions(poses: dict[str, Pose | None] | None) -> dict[str, np.ndarray] | None:
    if poses is None:
        return None
    return {name: pose.position for name, pose in poses.items() if pose is not None}


def replay_episode(
    episode: Episode,
    profile: Profile,
    settings: ReplaySettings | None = None,
    *,
    sinks: Sequence[Sink] = (),
    adapter: SimAdapter | None = None,
    initial_state: InitialState | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay `episode` in the profile's simulator and return its metrics, divergences and verdict."""
    settings = settings or ReplaySettings(tolerances=profile.tolerances)
    cameras = validate_episode(episode, profile, settings)
    own_adapter = adapter is None
    adapter = adapter or adapter_for(episode, profile)
    timer = _Timer()
    try:
        start = time.perf_counter()
        initial = initial_state or recover_initial_state(episode, profile, adapter)
        timer.add("initial_state", start)
        adapter.restore(initial)
        columns, offsets, final = _run_steps(episode, profile, settings, adapter, cameras, sinks, timer, progress)
    finally:
        if own_adapter:
            adapter.close()
    result = _conclude(episode, profile, settings, initial, columns, offsets, final, timer)
    for sink in sinks:
        sink.finish(result)
    return result


def _frame_streams(episode: Episode, cameras: Sequence[str]) -> dict[str, Iterator[np.ndarray]]:
    return {key: iter(episode.cameras[key].iter_frames(0)) for key in cameras}


def _run_steps(
    episode: Episode,
    profile: Profile,
    settings: ReplaySettings,
    adapter: SimAdapter,
    cameras: Sequence[str],
    sinks: Sequence[Sink],
    timer: _Timer,
    progress: Progress | None,
) -> dict[str, np.ndarray]:
    length = episode.length
    state_names = list(episode.state_names or [f"state_{i}" for i in range(episode.state.shape[1])])
    streams = _frame_streams(episode, cameras)
    measure: FrameObjectMeter | None = None
    objects_from_env = family_of(profile).objects_from_environment_state
    if episode.environment_state is None and cameras:
        measure = object_measure(episode, profile, adapter)
    planar = family_of(profile).planar
    opening: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {key: ([], []) for key in cameras}
    rows: list[dict[str, float]] = []
    for t in range(length):
        tick = time.perf_counter()
        action = None
        if t > 0:
            action = episode.action[t - 1]
            sim = adapter.step(action)
            tick = timer.add("physics", tick)
        else:
            sim = adapter.observe()
        compare_images = bool(cameras) and t % settings.image_stride == 0
        recorded_frames: dict[str, np.ndarray] = {}
        for key, stream in streams.items():
            frame = next(stream, None)  # decode every frame: sources are sequential
            if frame is None:
                raise InputError(f"camera {key!r} ran out of frames at frame {t} of {length}")
            if compare_images:
                recorded_frames[key] = frame
        tick = timer.add("decode", tick)
        replayed_frames = {key: adapter.render(profile.cameras[key]) for key in recorded_frames}
        tick = timer.add("render", tick)
        if settings.image_stride == 1 and t < alignment.WINDOW:
            for key, frame in recorded_frames.items():
                opening[key][0].append(alignment.thumbnail(frame))
                opening[key][1].append(alignment.thumbnail(replayed_frames[key]))

        recorded_poses: dict[str, Pose | None] | None = None
        replayed_poses: dict[str, Pose | None] = dict(sim.objects)
        if episode.environment_state is not None:
            recorded_poses = dict(objects_from_env(episode.environment_state[t], profile.objects))
        elif measure is not None and measure.camera in recorded_frames:
            recorded_poses = measure.measure(recorded_frames[measure.camera])
            if measure.symmetric:
                # Measured the same way, the measurement's biases (lifted or occluded objects, perspective)
                # cancel and only a real difference between the scenes remains.
                replayed_poses = measure.measure(replayed_frames[measure.camera])
        tick = timer.add("objects", tick)
        step = StepRecord(
            t=t,
            timestamp=float(episode.timestamps[t]),
            recorded_state=episode.state[t],
            replayed_state=sim.state,
            action=action,
            replayed_objects=_positions(replayed_poses) or {},
            recorded_objects=_positions(recorded_poses),
            recorded_object_angles=_planar_angles(recorded_poses) if planar else None,
            replayed_object_angles=_planar_angles(replayed_poses) if planar else None,
            recorded_frames=recorded_frames,
            replayed_frames=replayed_frames,
            reward=sim.reward,
            success=sim.success,
            recorded_reward=None if episode.reward is None or t == 0 else float(episode.reward[t - 1]),
            recorded_success=None if episode.success is None or t == 0 else bool(episode.success[t - 1]),
            unstable=sim.unstable,
        )
        row = metrics.step_metrics(step, state_names=state_names, groups=profile.state_groups, cameras=cameras)
        tick = timer.add("metrics", tick)
        rows.append(row)
        for sink in sinks:
            sink.on_step(step, row)
        timer.add("sinks", tick)
        if progress:
            progress(t + 1, length)
        if step.unstable:
            break
    else:
        # The last row's action has no row after it, but its outcome is recorded (next.reward/success).
        last = adapter.step(episode.action[length - 1])
        final = {"reward": last.reward, "success": float(last.success)}
        return _to_columns(rows, length), _frame_offsets(opening), final
    return _to_columns(rows, length), _frame_offsets(opening), {}


def _frame_offsets(opening: dict[str, tuple[list[np.ndarray], list[np.ndarray]]]) -> dict[str, alignment.FrameOffset]:
    """Per camera, the video offset measured on the opening frames (only where it is significant)."""
    found = {}
    for key, (recorded, replayed) in opening.items():
        offset = alignment.estimate_frame_offset(recorded, replayed)
        if offset is not None and offset.significant:
            found[key] = offset
    return found


def _to_columns(rows: list[dict[str, float]], length: int) -> dict[str, np.ndarray]:
    """Per-step dicts -> equal-length float columns, NaN where a step did not measure a column."""
    names = sorted({name for row in rows for name in row})
    columns = {name: np.full(length, np.nan) for name in names}
    for t, row in enumerate(rows):
        for name, value in row.items():
            columns[name][t] = value
    return columns


def _object_source(episode: Episode, profile: Profile, settings: ReplaySettings) -> str:
    """Where the recorded object poses compared at each step come from."""
    if not profile.objects:
        return "none"
    if episode.environment_state is not None:
        return "environment_state"
    if settings.mode == "images" and episode.cameras:
        if family_of(profile).meter_symmetric:
            return "image measurement of recorded and replayed frames"
        return "image measurement of recorded frames vs simulator pose"
    return "none (state mode without environment_state)"


def _recorded_success(episode: Episode, profile: Profile) -> bool | None:
    """What the dataset says about success, by the family's rule (its flags, else the profile's declaration)."""
    return family_of(profile).recorded_success(episode.reward, episode.success, profile.recorded_success_default)


def _conclude(
    episode: Episode,
    profile: Profile,
    settings: ReplaySettings,
    initial: InitialState,
    columns: dict[str, np.ndarray],
    offsets: dict[str, alignment.FrameOffset],
    final: dict[str, float],
    timer: _Timer,
) -> ReplayResult:
    state_names = list(episode.state_names or [f"state_{i}" for i in range(episode.state.shape[1])])
    checks = divergence.checks_for(profile, settings.tolerances, columns)
    divergences = divergence.find_divergences(columns, checks, settings.tolerances.consecutive_steps)
    for key, offset in offsets.items():
        group = f"video_offset/{key}"
        divergences[group] = 0
        divergences.details[group] = alignment.OffsetOnset(group, 0, offset.offset, 0, "frames", 1, "offset")
    summary = divergence.summarize(columns, state_names=state_names, objects=list(profile.objects),
                                   object_units=family_of(profile).object_units)
    replayed_success = bool(np.nanmax(columns.get("success", np.zeros(1))) >= 1.0 or final.get("success", 0) >= 1)
    if final:
        summary["replayed_final_reward"] = final["reward"]
        summary["replayed_max_reward"] = max(summary.get("replayed_max_reward") or 0.0, final["reward"])
    recorded_success = _recorded_success(episode, profile)
    summary["replayed_success"] = replayed_success
    summary["recorded_success"] = recorded_success
    unstable = columns.get("unstable")
    unstable_step = int(np.nanargmax(unstable)) if unstable is not None and np.nanmax(unstable) >= 1 else None
    verdict = divergence.decide_verdict(
        divergences,
        summary,
        length=episode.length,
        tolerances=settings.tolerances,
        replayed_success=replayed_success,
        recorded_success=recorded_success,
        unstable_step=unstable_step,
    )
    steps = max(1, episode.length - 1)
    return ReplayResult(
        meta=episode.meta,
        episode_index=episode.index,
        length=episode.length,
        profile=profile,
        settings=settings,
        initial_state=initial,
        metrics=columns,
        divergence=divergences,
        summary=summary,
        verdict=verdict,
        versions=versions(),
        task=episode.task,
        extra={
            "object_measurement": _object_source(episode, profile, settings),
            "timings_ms_per_step": {k: 1000.0 * v / steps for k, v in timer.totals.items()},
            "video_offsets": {k: {"offset": o.offset, "cost_aligned": o.cost_aligned, "cost_best": o.cost_best}
                              for k, o in offsets.items()},
        },
    )
