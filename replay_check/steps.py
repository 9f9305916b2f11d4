"""The records that flow from the replay engine to metrics and sinks (Rerun, reports, video).

Step t pairs recorded row t with the simulator after actions 0..t-1 (step 0 is the restored
initial state). Images are present only on steps where they were compared (see image stride).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from replay_check.dataset.episode import DatasetMeta
from replay_check.profiles import Profile, Tolerances
from replay_check.sims.base import InitialState


@dataclass(frozen=True)
class ReplaySettings:
    """Everything that changes a replay's outcome (hashed into reports so resumed batches can tell)."""

    mode: str = "images"  # "images" | "state"
    image_stride: int = 1
    tolerances: Tolerances = field(default_factory=Tolerances)
    # Cause analysis (replay_check.cause): None = automatic on a replay that did not pass, 0 = off.
    ensemble: int | None = None  # perturbed state-mode copies
    resync: int | None = None  # re-sync the robot every K steps
    strict: bool = False  # a marginal episode fails instead of warning

    def __post_init__(self) -> None:
        from replay_check.errors import InputError

        if self.mode not in ("images", "state"):
            raise InputError(f"mode {self.mode!r}; expected 'images' or 'state'")
        if isinstance(self.image_stride, bool) or not isinstance(self.image_stride, int) or self.image_stride < 1:
            raise InputError(f"image stride must be an integer >= 1, got {self.image_stride!r}")


@dataclass
class StepRecord:
    t: int
    timestamp: float
    recorded_state: np.ndarray
    replayed_state: np.ndarray
    action: np.ndarray | None  # the action whose effect this step shows (None at t=0)
    replayed_objects: dict[str, np.ndarray]  # object name -> position (3,)
    recorded_objects: dict[str, np.ndarray] | None = None  # from environment_state or image measurement
    # Objects an image meter looked for on this step -> True when it did not see them (None: not measured).
    object_gaps: dict[str, bool] | None = None
    recorded_object_angles: dict[str, float] | None = None  # planar angle (rad), where meaningful (PushT)
    replayed_object_angles: dict[str, float] | None = None
    recorded_frames: dict[str, np.ndarray] = field(default_factory=dict)  # dataset camera key -> HxWx3
    replayed_frames: dict[str, np.ndarray] = field(default_factory=dict)
    reward: float = 0.0
    success: bool = False
    recorded_reward: float | None = None
    recorded_success: bool | None = None
    unstable: str | None = None
    # wxyz per object where the dataset records orientation (environment_state); None when measured/unknown
    recorded_object_quaternions: dict[str, np.ndarray] | None = None
    # (names, positions (N, 3), wxyz (N, 4)) of the simulator's bodies, when a sink asked for them (3-D scene)
    body_poses: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class Verdict:
    status: str  # "pass" | "warn" | "fail"
    first_divergence_step: int | None
    reasons: tuple[str, ...]
    cause: str | None = None  # see replay_check.cause: initial_state | marginal | physics | data | rendering
    evidence: tuple[str, ...] = ()  # the measurements behind the cause


@dataclass
class ReplayResult:
    """A finished replay: per-step metric columns plus everything a report states."""

    meta: DatasetMeta
    episode_index: int
    length: int
    profile: Profile
    settings: ReplaySettings
    initial_state: InitialState
    metrics: dict[str, np.ndarray]  # column name -> per-step values (NaN where not computed), len == length
    divergence: dict[str, int | None]  # group name -> first diverging step (None: never)
    summary: dict[str, Any]
    verdict: Verdict
    versions: dict[str, str]
    task: str = ""
    # How the recorded objects were observed, per-phase cost, the step loop's own figures (CPU, memory,
    # render workers) and significant video offsets: set by the engine.
    object_measurement: str = "none"
    timings_ms_per_step: dict[str, float] = field(default_factory=dict)
    step_loop: dict[str, Any] = field(default_factory=dict)
    video_offsets: dict[str, dict[str, float]] = field(default_factory=dict)
    # Provenance and outputs: set by the pipeline (None when the engine is used on its own).
    settings_hash: str | None = None
    dataset_revision: str | None = None
    fingerprint: str | None = None
    artifacts: dict[str, str | None] | None = None
    stack: dict[str, Any] | None = None  # the stack replayed on: name, versions, in_process (stacks.runner)
    stacks: dict[str, Any] | None = None  # a multi-stack comparison (stacks.compare), when one was made
    # The cause analysis (replay_check.cause) and what it measured; set by the pipeline's conclude hook.
    contacts: list[dict[str, Any]] | None = None  # contact timeline (replay_check.contacts)
    diagnosis: dict[str, Any] | None = None  # re-synced replay and ensemble summaries
    diagnosis_seconds: dict[str, float] = field(default_factory=dict)  # wall time, under report.json timings
    divergence_frames: dict[str, Any] | None = None  # report.md's frames at the first divergence


@dataclass(frozen=True)
class SinkContext:
    """What a sink learns before the first step: the episode, its profile, the settings, compared cameras."""

    episode: Any  # replay_check.dataset.episode.Episode
    profile: Profile
    settings: ReplaySettings
    cameras: tuple[str, ...]  # dataset camera keys compared (empty in state mode)
    state_names: tuple[str, ...]


class Sink(Protocol):
    """Receives one replay as it happens; nothing is kept whole unless the sink keeps it.

    The engine calls `start(context)` before step 0, `on_step` per step in order, then exactly one of
    `finish(result)` (the replay completed) or `abort()` (it raised; abort must be idempotent and
    leave no partial output). `start` and `abort` are optional for sinks that need neither.
    """

    def start(self, context: SinkContext) -> None: ...

    def on_step(self, step: StepRecord, metrics: dict[str, float]) -> None: ...

    def finish(self, result: ReplayResult) -> None: ...

    def abort(self) -> None: ...
