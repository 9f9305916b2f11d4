"""The replay engine: restore an episode's initial state, re-execute its actions, compare step by step.

No I/O of its own: frames come from the Episode's sources, results go to sinks (Rerun, video) and
back to the caller as a ReplayResult. Step t compares recorded row t with the simulator after
actions 0..t-1, so step 0 checks the restored initial state itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from replay_check import alignment, divergence, metrics
from replay_check.dataset.episode import Episode
from replay_check.errors import InputError
from replay_check.families import family_of
from replay_check.initial_state import FrameObjectMeter, object_measure, recover_initial_state
from replay_check.profiles import Profile
from replay_check.provenance import versions
from replay_check.recorded import FrameFeed, RecordedAhead
from replay_check.render_workers import RenderWorkers, auto_worker_count, process_pss_mb
from replay_check.sims import make_adapter
from replay_check.sims.base import InitialState, Pose, SimAdapter, SimObservation, SimSpec
from replay_check.stepping import ReadsView, step_through, take_read
from replay_check.steps import ReplayResult, ReplaySettings, Sink, SinkContext, StepRecord

Progress = Callable[[int, int], None]
# Called after every physics step with (t, adapter), e.g. a contact timeline; must not change the simulation.
# A probe with a `reads` attribute (adapter method names, e.g. ("contacts",)) is given a ReadsView of those
# instead of the adapter, which lets a stack's worker step ahead (replay_check.stepping).
Probe = Callable[[int, SimAdapter], None]
PIPELINE_DEPTH_PER_WORKER = 2  # steps the physics side may run ahead of the comparison, per render worker
RECORDED_AHEAD_DEPTH = 8  # at least this many steps' recorded frames decoded and measured ahead of the comparison
RECORDED_AHEAD_BYTES = 32 << 20  # and as many more as fit in this (96x96 frames: 27 KB, 480x640: 0.9 MB each)
STEP_AHEAD = 32  # steps an out-of-process adapter may take ahead of the comparison in state mode
IMAGE_STEP_AHEAD = 16  # steps a render worker that steps the physics too may take ahead (Family.step_in_worker)


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
    unmapped = [key for key in episode.cameras if key not in profile.cameras]
    if unmapped and settings.mode == "images":
        raise InputError(
            f"dataset camera {unmapped[0]!r} has no simulator camera in profile {profile.name!r} "
            f"(mapped: {', '.join(profile.cameras) or 'none'})"
        )
    return compared_cameras(episode, settings)


def compared_cameras(episode: Episode, settings: ReplaySettings) -> list[str]:
    """The dataset cameras a replay compares: all of them in image mode, none in state mode."""
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
    loop: dict[str, float | None] = field(default_factory=dict)  # the step loop's wall and CPU seconds

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.totals[phase] = self.totals.get(phase, 0.0) + (now - since)
        return now


def _planar_angles(poses: dict[str, Pose | None] | None) -> dict[str, float] | None:
    if not poses:
        return None
    return {name: pose.yaw for name, pose in poses.items() if pose is not None}


def _quaternions(poses: dict[str, Pose | None] | None) -> dict[str, np.ndarray] | None:
    if poses is None:
        return None
    return {name: pose.quaternion for name, pose in poses.items() if pose is not None}


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
    render_workers: int | None = None,
    physics: dict[str, float] | None = None,
    probes: Sequence[Probe] = (),
    conclude: Callable[[ReplayResult], ReplayResult] | None = None,
    recorded_ahead: bool | None = None,
    workers: PrestartedWorkers | None = None,
) -> ReplayResult:
    """Replay `episode` in the profile's simulator and return its metrics, divergences and verdict.

    `physics` holds SimSpec.physics overrides for the adapter built here (not for a given `adapter`).
    `probes` see the adapter after every physics step; `conclude` may refine the result (the cause
    analysis) before the sinks see it.

    `render_workers`: processes rendering the compared frames while this one steps ahead (None: the
    family's default on >= 2 cores, one per core; 0: render here, in step order). For a family with
    `step_in_worker` (PushT) the default is one worker that also steps the physics, running ahead, when
    every step is compared and every probe declares its reads. The result is the same either way, bit
    for bit.

    `recorded_ahead`: decode the recorded frames, and measure them where that needs no replay (a
    one-sided frame meter like PushT's), in a thread ahead of the comparison, from before the workers
    are up. Same result bit for bit. None: only where a worker steps the physics (this process then
    waits for it, and for its start, with nothing else to do); in a serial replay the thread's GIL
    contention cost about what it saved on a busy 2-core machine (scripts/benchmark.py --recorded-ahead).

    `workers`: the render workers `start_render_workers` started for this replay (with the same episode,
    profile, settings, `render_workers` and `probes`, on `adapter`'s interpreter), so that they come up
    while the caller sets up; this function takes them over and closes them, whatever happens.
    """
    prestarted, workers = workers, None  # taken over: closed here, whatever happens
    try:
        settings = settings or ReplaySettings(tolerances=profile.tolerances)
        cameras = validate_episode(episode, profile, settings)
        own_adapter = adapter is None
        adapter = adapter or adapter_for(episode, profile, physics)
    except BaseException:
        if prestarted is not None:
            prestarted.close()
        raise
    timer = _Timer()
    try:
        # Started first (unless the caller did, earlier still), so the workers load and warm up while the
        # sinks start and the state is estimated.
        plan = _plan(cameras, episode, profile, settings, render_workers, probes, adapter)
        if prestarted is not None and prestarted.plan != plan:
            raise ValueError(f"prestarted render workers {prestarted.plan} do not match this replay's {plan}")
        steps_in_worker = plan is not None and plan.steps_in_worker
        if plan is not None:
            workers = prestarted.workers if prestarted is not None else plan.start()
        _start_sinks(sinks, SinkContext(episode, profile, settings, tuple(cameras), tuple(
            episode.state_names or [f"state_{i}" for i in range(episode.state.shape[1])])))
        start = time.perf_counter()
        # With workers, the estimate's renders run in one (this process then renders nothing itself).
        estimator = workers.estimating(adapter) if workers is not None else adapter
        initial = initial_state or recover_initial_state(episode, profile, estimator)
        timer.add("initial_state", start)
        adapter.restore(initial)

        def ready() -> _Handover | None:
            """Wait for the workers to be up, unless one is to step the physics: it takes over when it is up."""
            if workers is None:
                return None
            if steps_in_worker:
                return _Handover(workers, initial, episode.action, {key: ("render", profile.cameras[key])
                                                                    for key in cameras})
            workers.ready()
            timer.add("render_workers_start", start)
            return None

        ahead = steps_in_worker if recorded_ahead is None else recorded_ahead
        columns, offsets, final = _run_steps(episode, profile, settings, adapter, cameras, sinks, timer, progress,
                                             workers, probes, ahead, ready)
    except BaseException:
        abort_sinks(sinks)
        raise
    finally:
        for given in (prestarted, workers):  # the same workers twice when given: closing again is harmless
            if given is not None:
                given.close()
        if own_adapter:
            adapter.close()
    result = _conclude(episode, profile, settings, initial, columns, offsets, final, timer)
    if conclude is not None:
        result = conclude(result)
    for sink in sinks:
        sink.finish(result)
    return result


def _start_sinks(sinks: Sequence[Sink], context: SinkContext) -> None:
    for sink in sinks:
        start = getattr(sink, "start", None)
        if start is not None:
            start(context)


def abort_sinks(sinks: Sequence[Sink]) -> None:
    """Every sink's abort (optional in the protocol); one failing abort does not skip the others."""
    for sink in sinks:
        abort = getattr(sink, "abort", None)
        if abort is not None:
            with contextlib.suppress(Exception):  # the replay's own error is the one to report
                abort()


def _worker_count(profile: Profile, count: int | None) -> int:
    """Render workers to start; None: the family's default (none on one core, `Family.render_workers`)."""
    if count is None:
        family = family_of(profile)
        if not family.render_workers:
            return 0
        return min(1, auto_worker_count()) if family.step_in_worker else auto_worker_count()
    if count < 0:
        raise InputError(f"render workers must be >= 0, got {count}")
    return count


def _steps_in_worker(profile: Profile, settings: ReplaySettings, probes: Sequence[Probe], count: int) -> bool:
    """Whether the one render worker steps the physics too (`Family.step_in_worker`), running ahead.

    It renders every step, so only when every step is compared; and a probe must see the worker's
    simulator through the reads it declares (one without `reads` needs this process's adapter in step).
    """
    return (family_of(profile).step_in_worker and count == 1 and settings.image_stride == 1
            and all(hasattr(probe, "reads") for probe in probes))


@dataclass(frozen=True)
class WorkerPlan:
    """The render workers a replay starts: equal plans start interchangeable workers."""

    spec: SimSpec
    count: int
    depth: int  # steps outstanding at once (bounds the frame pools)
    steps_in_worker: bool  # the one worker steps the physics too (`_Handover`)
    python: str | None = None  # the interpreter (a stack's, for a proxy adapter); None: this one
    isolated: bool = False

    def start(self) -> RenderWorkers:
        """The workers, starting in the background (`RenderWorkers`)."""
        return RenderWorkers(self.spec, self.count, depth=self.depth, python=self.python, isolated=self.isolated)


def plan_render_workers(episode: Episode, profile: Profile, settings: ReplaySettings, *,
                        render_workers: int | None = None, probes: Sequence[Probe] = (),
                        adapter: SimAdapter | None = None) -> WorkerPlan | None:
    """The render workers replay_episode starts for these arguments (None: it renders here, or nothing).

    They render the compared cameras on the adapter's own interpreter (a stack's, for a proxy; this
    one for None or an in-process adapter). Raises InputError for an episode the profile cannot replay.
    """
    return _plan(validate_episode(episode, profile, settings), episode, profile, settings, render_workers, probes,
                 adapter)


def _plan(cameras: Sequence[str], episode: Episode, profile: Profile, settings: ReplaySettings,
          render_workers: int | None, probes: Sequence[Probe], adapter: SimAdapter | None) -> WorkerPlan | None:
    """plan_render_workers for an episode already validated (`cameras`: the ones it compares)."""
    count = _worker_count(profile, render_workers)
    if not cameras or count == 0:
        return None
    steps_in_worker = _steps_in_worker(profile, settings, probes, count)
    depth = IMAGE_STEP_AHEAD if steps_in_worker else PIPELINE_DEPTH_PER_WORKER * count + 2
    return WorkerPlan(sim_spec(episode, profile), count, depth, steps_in_worker,
                      python=getattr(adapter, "python", None), isolated=getattr(adapter, "isolated", False))


@dataclass
class PrestartedWorkers:
    """Render workers started before replay_episode (`start_render_workers`), with the plan they follow."""

    plan: WorkerPlan
    workers: RenderWorkers

    def close(self) -> None:
        """Stop and reap them (again is harmless): a caller failing before replay_episode took them over."""
        self.workers.close()


def start_render_workers(episode: Episode, profile: Profile, settings: ReplaySettings, *,
                         render_workers: int | None = None, probes: Sequence[Probe] = (),
                         adapter: SimAdapter | None = None) -> PrestartedWorkers | None:
    """Start the render workers replay_episode would start, now, for its `workers` argument.

    Their start (process, imports, GL context, first render: about a second on 2 cores) then overlaps
    whatever the caller does before the replay. None when the replay would start none.
    """
    plan = plan_render_workers(episode, profile, settings, render_workers=render_workers, probes=probes,
                               adapter=adapter)
    return None if plan is None else PrestartedWorkers(plan, plan.start())


class _Handover:
    """The render worker that is to step the physics (`Family.step_in_worker`), taking over once it is up.

    Until then this process steps and renders itself, in step order, so the worker's start costs no
    wait. The worker then takes the actions taken so far without reading anything (what is read
    between steps does not change the physics: it reaches the same state bit for bit) and steps
    ahead from there, each step's frames coming back as reads.
    """

    def __init__(self, workers: RenderWorkers, initial: InitialState, actions: np.ndarray,
                 renders: dict[str, tuple[str, str]]):
        self.workers, self.initial, self.actions = workers, initial, actions
        self.renders = renders  # dataset camera -> its read, ("render", simulator camera)
        self.from_step: int | None = None
        self.taken_at: float | None = None  # perf_counter() once it has caught up

    def up(self, t: int) -> bool:
        """Whether the worker can take over at step t (it has started)."""
        return self.workers.is_up(0)

    def take(self, t: int, reads: tuple[str, ...]):
        """(the worker's adapter, its steps from step t on with `reads`), step t being the state after t - 1 actions.

        At t = 0 the caller reads the initial state from the adapter; at t > 0 the first step yielded is t.
        """
        done = max(0, t - 1)  # actions taken before the worker's first step
        proxy = self.workers.worker(0)
        proxy.restore(self.initial)
        for start in range(0, done, 64):  # 64 at a time, replies collected after (no round trip each)
            chunk = self.actions[start:min(done, start + 64)]
            for action in chunk:
                proxy.submit("advance", action)
            for _ in chunk:
                proxy.collect("advance")
        self.from_step, self.taken_at = t, time.perf_counter()
        stepping = step_through(proxy, self.actions[done:], (*reads, *self.renders.values()), ahead=IMAGE_STEP_AHEAD)
        return proxy, stepping


@dataclass
class _Stepped:
    """One step as the physics side produced it, waiting for its frames and comparison."""

    t: int
    action: np.ndarray | None
    sim: SimObservation
    keys: list[str]  # dataset cameras compared at this step
    frames: dict[str, np.ndarray] | None  # rendered in process (serial); None: the workers have them
    bodies: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None  # body_poses(), for sinks asking


def _loop_usage(workers: RenderWorkers | None) -> tuple[float | None, dict[str, float | None]]:
    """(CPU seconds of this process plus its render workers so far, the workers' memory figures)."""
    own = time.process_time()
    if workers is None:
        return own, {}
    stats = workers.stats()
    return (None if stats["cpu_s"] is None else own + stats["cpu_s"]), stats


def _step_reads(probes: Sequence[Probe], want_bodies: bool, cameras: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """(adapter reads taken after every step, steps the adapter may take ahead of the comparison).

    A probe declaring `reads` sees only those (taken right after its step); one that does not gets the
    adapter itself, which must then be at that step. In image mode the loop renders or snapshots
    between steps, so nothing runs ahead there (a render worker stepping the physics does, `_Handover`).
    """
    reads = dict.fromkeys(name for probe in probes for name in getattr(probe, "reads", ()))
    if want_bodies:
        reads["body_poses"] = None
    declared = all(hasattr(probe, "reads") for probe in probes)
    return tuple(reads), STEP_AHEAD if declared and not cameras else 0


def _run_steps(
    episode: Episode,
    profile: Profile,
    settings: ReplaySettings,
    adapter: SimAdapter,
    cameras: Sequence[str],
    sinks: Sequence[Sink],
    timer: _Timer,
    progress: Progress | None,
    workers: RenderWorkers | None = None,
    probes: Sequence[Probe] = (),
    recorded_ahead: bool = False,
    ready: Callable[[], _Handover | None] = lambda: None,
) -> tuple[dict[str, np.ndarray], dict[str, alignment.FrameOffset], dict[str, float]]:
    """Step physics, render, compare and log every step.

    Serially (no workers) each step is rendered and compared before the next physics step. With
    workers, the physics side runs up to `workers.depth` steps ahead of the comparison side and
    hands each step's snapshot to the workers; both sides see the same states in the same order.
    `ready` waits for the workers (the recorded frames are decoded ahead meanwhile, when they are) or
    returns the handover to one that is to step the physics and render ahead (`_Handover`); this
    process then only compares once it is up, the frames coming back with each step.
    """
    compare = _Comparer(episode, profile, adapter, cameras, settings.image_stride, sinks, timer, progress,
                        recorded_ahead)
    try:
        handover = ready()
        return _step_loop(episode, profile, settings, adapter, cameras, sinks, timer, compare, workers, probes,
                          handover)
    finally:
        compare.close()


def _step_loop(episode: Episode, profile: Profile, settings: ReplaySettings, adapter: SimAdapter,
               cameras: Sequence[str], sinks: Sequence[Sink], timer: _Timer, compare: _Comparer,
               workers: RenderWorkers | None, probes: Sequence[Probe], handover: _Handover | None = None):
    length = episode.length
    depth = workers.depth if workers is not None and handover is None else 0
    pending: deque[_Stepped] = deque()
    wall0, own0, (cpu0, _) = time.perf_counter(), time.process_time(), _loop_usage(workers)
    final: dict[str, float] = {}
    want_bodies = any(getattr(sink, "wants_body_poses", False) for sink in sinks)
    reads, ahead = _step_reads(probes, want_bodies, cameras)
    stepper, renders = None, {}  # the worker stepping the physics once it has taken over, its frames' reads
    if handover is not None and handover.up(0):
        stepper, stepping = handover.take(0, reads)
        renders = handover.renders
    else:
        # All `length` actions: the last row's has no row after it, but its outcome is recorded (next.reward/success).
        stepping = step_through(adapter, episode.action, reads, ahead=ahead)
    source = stepper if stepper is not None else adapter
    sim, values = source.observe(), {read: take_read(source, read) for read in (*reads, *renders.values())}
    try:
        for t in range(length):
            tick = time.perf_counter()
            action = None
            if t > 0:
                action = episode.action[t - 1]
                if stepper is None and handover is not None and handover.up(t):
                    stepping.close()  # in process, nothing was taken ahead
                    stepper, stepping = handover.take(t, reads)
                    renders = handover.renders
                sim, values = next(stepping)
            view = ReadsView(values)
            for probe in probes:
                probe(t, view if hasattr(probe, "reads") else adapter)
            keys = _compared(cameras, settings.image_stride, t)
            tick = timer.add("physics" if stepper is None else "simulator", tick)  # the latter: waiting for it
            frames = None
            if stepper is not None:
                frames = {key: values[renders[key]] for key in keys}
            elif workers is None or handover is not None:  # serial (or until the stepping worker is up)
                frames = {key: adapter.render(profile.cameras[key]) for key in keys}
                timer.add("render", tick)
            elif keys:
                workers.submit(t, adapter.snapshot(), [profile.cameras[key] for key in keys])
                timer.add("submit", tick)
            bodies = values["body_poses"] if want_bodies else None  # read after the step: physics may run ahead
            pending.append(_Stepped(t, action, sim, keys, frames, bodies))
            while len(pending) > depth:
                compare.step(pending.popleft(), workers)
            if sim.unstable:
                break
        else:
            last, _ = next(stepping)
            final = {"reward": last.reward, "success": float(last.success)}
    finally:
        stepping.close()  # steps a worker took ahead of an early stop are discarded
    while pending:
        compare.step(pending.popleft(), workers)
    cpu1, memory = _loop_usage(workers)
    timer.loop = {"wall_s": time.perf_counter() - wall0,
                  "cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
                  "main_cpu_s": time.process_time() - own0,
                  "render_workers": workers.count if workers is not None else 0,
                  "steps_in_worker": stepper is not None,
                  "worker_from_step": handover.from_step if handover is not None else None,
                  # seconds into the loop at which it took over (the rest of the loop ran pipelined)
                  "worker_from_s": None if handover is None or handover.taken_at is None else handover.taken_at - wall0,
                  "workers_peak_rss_mb": memory.get("peak_rss_mb"), "workers_pss_mb": memory.get("pss_mb"),
                  # reading smaps costs ~10 ms: a figure for image mode's memory target, not for state mode's
                  "main_pss_mb": process_pss_mb(os.getpid()) if cameras else None}
    return _to_columns(compare.rows, length), _frame_offsets(compare.opening), final


def _compared(cameras: Sequence[str], stride: int, t: int) -> list[str]:
    """The dataset cameras compared at step t (every `stride`-th step)."""
    return list(cameras) if cameras and t % stride == 0 else []


class _OffsetProbe:
    """Thumbnails of the opening frames (every frame compared), for the video-offset estimate."""

    def __init__(self, cameras: Sequence[str], stride: int):
        self.active = stride == 1
        self.opening: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {key: ([], []) for key in cameras}

    def add(self, t: int, recorded: dict[str, np.ndarray], replayed: dict[str, np.ndarray]) -> None:
        if not self.active or t >= alignment.WINDOW:
            return
        for key, frame in recorded.items():
            self.opening[key][0].append(alignment.thumbnail(frame))
            self.opening[key][1].append(alignment.thumbnail(replayed[key]))


class _ObjectObserver:
    """Recorded and replayed object poses of one step: environment_state, else the family's frame meter."""

    def __init__(self, episode: Episode, profile: Profile, adapter: SimAdapter, cameras: Sequence[str]):
        family = family_of(profile)
        self.episode, self.objects = episode, profile.objects
        self.objects_from_env = family.objects_from_environment_state
        self.measure: FrameObjectMeter | None = None
        if episode.environment_state is None and cameras:
            self.measure = object_measure(episode, profile, adapter)

    @property
    def one_sided(self) -> bool:
        """Whether only recorded frames are measured (so that can run ahead of the replay)."""
        return self.measure is not None and not self.measure.symmetric

    def observe(self, t: int, sim: SimObservation, recorded_frames: dict[str, np.ndarray],
                replayed_frames: dict[str, np.ndarray], measured: dict[str, Pose | None] | None = None,
                ) -> tuple[dict[str, Pose | None] | None, dict[str, Pose | None]]:
        """(recorded poses or None when unknown at this step, replayed poses).

        `measured`: the recorded frame's poses when they were measured ahead (RecordedAhead).
        """
        replayed: dict[str, Pose | None] = dict(sim.objects)
        measure = self.measure
        if self.episode.environment_state is not None:
            return dict(self.objects_from_env(self.episode.environment_state[t], self.objects)), replayed
        if measure is not None and measure.camera in recorded_frames:
            recorded = measured if measured is not None else measure.measure(recorded_frames[measure.camera])
            if measure.symmetric:
                # Measured the same way, the measurement's biases (lifted or occluded objects, perspective)
                # cancel and only a real difference between the scenes remains.
                replayed = measure.measure(replayed_frames[measure.camera])
            return recorded, replayed
        return None, replayed

    def gaps(self, recorded: dict[str, Pose | None] | None, replayed: dict[str, Pose | None],
             recorded_frames: dict[str, np.ndarray]) -> dict[str, bool] | None:
        """Per object, whether the frame meter missed it in either frame (None when no meter ran this step)."""
        measure = self.measure
        if self.episode.environment_state is not None or measure is None or measure.camera not in recorded_frames:
            return None
        return {name: recorded.get(name) is None or replayed.get(name) is None for name in self.objects}


def _ahead_depth(episode: Episode, cameras: Sequence[str]) -> int:
    """Steps of recorded frames held ahead: RECORDED_AHEAD_DEPTH, or as many as RECORDED_AHEAD_BYTES hold."""
    step_bytes = sum(episode.cameras[key].height * episode.cameras[key].width * 3 for key in cameras)
    return max(RECORDED_AHEAD_DEPTH, min(episode.length, RECORDED_AHEAD_BYTES // max(1, step_bytes)))


class _Comparer:
    """The comparison side of the step loop: frames, objects, offset probe, metrics and sinks, in step order."""

    def __init__(self, episode: Episode, profile: Profile, adapter: SimAdapter, cameras: Sequence[str], stride: int,
                 sinks: Sequence[Sink], timer: _Timer, progress: Progress | None, ahead: bool = False):
        self.episode, self.profile, self.sinks, self.timer, self.progress = episode, profile, sinks, timer, progress
        self.cameras = list(cameras)
        self.state_names = list(episode.state_names or [f"state_{i}" for i in range(episode.state.shape[1])])
        self.objects = _ObjectObserver(episode, profile, adapter, cameras)
        self.feed = FrameFeed(episode, cameras)
        self.ahead: RecordedAhead | None = None
        if cameras and ahead:
            meter = self.objects.measure if self.objects.one_sided else None
            self.ahead = RecordedAhead(self.feed, lambda t: _compared(self.cameras, stride, t),
                                       meter.camera if meter else None, meter.measure if meter else None,
                                       _ahead_depth(episode, cameras))
        self.probe = _OffsetProbe(cameras, stride)
        self.planar = family_of(profile).planar
        self.rows: list[dict[str, float]] = []
        self.metrics = metrics.StepMetrics(state_names=self.state_names, groups=profile.state_groups,
                                           cameras=self.cameras)

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
            for phase, seconds in self.ahead.spent.items():  # the thread's own time, beside the main's
                self.timer.totals[f"ahead_{phase}"] = seconds
        else:
            self.feed.close()

    @property
    def opening(self) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
        return self.probe.opening

    def _replayed_frames(self, stepped: _Stepped, workers: RenderWorkers | None) -> dict[str, np.ndarray]:
        if stepped.frames is not None:
            return stepped.frames
        if not stepped.keys:
            return {}
        done, by_camera = workers.collect()
        if done != stepped.t:
            raise RuntimeError(f"render workers returned step {done}'s frames for step {stepped.t}")
        return {key: by_camera[self.profile.cameras[key]] for key in stepped.keys}

    def step(self, stepped: _Stepped, workers: RenderWorkers | None) -> None:
        episode, timer = self.episode, self.timer
        t, sim, length = stepped.t, stepped.sim, episode.length
        tick = time.perf_counter()
        measured = None
        if self.ahead is not None:
            recorded_frames, measured = self.ahead.next(t)  # the wait for them counts as decode
        else:
            recorded_frames = self.feed.next(t, stepped.keys)
        tick = timer.add("decode", tick)
        replayed_frames = self._replayed_frames(stepped, workers)
        if stepped.frames is None:
            tick = timer.add("render", tick)
        self.probe.add(t, recorded_frames, replayed_frames)
        recorded_poses, replayed_poses = self.objects.observe(t, sim, recorded_frames, replayed_frames, measured)
        gaps = self.objects.gaps(recorded_poses, replayed_poses, recorded_frames)
        tick = timer.add("objects", tick)
        step = StepRecord(
            t=t,
            timestamp=float(episode.timestamps[t]),
            recorded_state=episode.state[t],
            replayed_state=sim.state,
            action=stepped.action,
            replayed_objects=_positions(replayed_poses) or {},
            recorded_objects=_positions(recorded_poses),
            object_gaps=gaps,
            recorded_object_angles=_planar_angles(recorded_poses) if self.planar else None,
            replayed_object_angles=_planar_angles(replayed_poses) if self.planar else None,
            recorded_frames=recorded_frames,
            replayed_frames=replayed_frames,
            reward=sim.reward,
            success=sim.success,
            recorded_reward=None if episode.reward is None or t == 0 else float(episode.reward[t - 1]),
            recorded_success=None if episode.success is None or t == 0 else bool(episode.success[t - 1]),
            unstable=sim.unstable,
            recorded_object_quaternions=_quaternions(recorded_poses) if episode.environment_state is not None
            else None,
            body_poses=stepped.bodies,
        )
        row = self.metrics(step)
        tick = timer.add("metrics", tick)
        self.rows.append(row)
        for sink in self.sinks:
            sink.on_step(step, row)
        timer.add("sinks", tick)
        if self.progress:
            self.progress(t + 1, length)


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
        object_measurement=_object_source(episode, profile, settings),
        timings_ms_per_step={k: 1000.0 * v / steps for k, v in timer.totals.items()},
        step_loop=dict(timer.loop),
        video_offsets={k: {"offset": o.offset, "cost_aligned": o.cost_aligned, "cost_best": o.cost_best}
                       for k, o in offsets.items()},
    )
