"""Record scripted episodes into a LeRobot v3.0 dataset whose ground truth we know.

`record_dataset` picks an environment's scripted policy, rolls out `episodes` seeds (seed, seed+1, ...)
and streams every row into `DatasetWriter`. Features mirror the public datasets of each family
(lerobot/aloha_sim_*, lerobot/pusht) so that replay-check treats recordings exactly like hub data,
plus, on request, observation.environment_state with the true object state.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from replay_check.dataset.writer import DatasetWriter
from replay_check.errors import InputError
from replay_check.policies import RecordedFrame

ALOHA_MOTORS = [
    f"{side}_{joint}"
    for side in ("left", "right")
    for joint in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
]
POSE_FIELDS = ("x", "y", "z", "qw", "qx", "qy", "qz")
ALOHA_IMAGE_KEY = "observation.images.top"
PUSHT_IMAGE_KEY = "observation.image"


@dataclass(frozen=True)
class EnvSpec:
    """How one `--env` is recorded: rollout, dataset layout and the task text of its public datasets."""

    name: str
    fps: int
    robot_type: str
    task: str
    default_steps: int
    features: dict[str, dict]
    env_state_names: list[str]
    rollout: Callable[[int, int, bool], Iterator[RecordedFrame]]  # (seed, steps, render) -> rows


@dataclass(frozen=True)
class RecordSummary:
    """What `record_dataset` wrote: where, how many rows, and which episodes reached success."""

    root: Path
    episodes: int
    frames: int
    lengths: list[int]
    success: list[bool]
    seeds: list[int]

    @property
    def success_rate(self) -> float:
        return sum(self.success) / len(self.success) if self.success else 0.0


def _scalar(dtype: str) -> dict:
    return {"dtype": dtype, "shape": [1], "names": None}


def _aloha_spec(name: str, task: str, objects: tuple[str, ...], sim_task: str) -> EnvSpec:
    def rollout(seed: int, steps: int, render: bool) -> Iterator[RecordedFrame]:
        from replay_check.policies.aloha import rollout_aloha

        return rollout_aloha(sim_task, seed, steps=steps, render=render)

    vector = {"dtype": "float32", "shape": [14], "names": {"motors": ALOHA_MOTORS}}
    return EnvSpec(
        name=name,
        fps=50,
        robot_type="aloha",
        task=task,
        default_steps=400,
        features={
            "observation.state": vector,
            "action": vector,
            ALOHA_IMAGE_KEY: {"dtype": "video", "shape": [480, 640, 3], "names": ["height", "width", "channel"]},
            "next.reward": _scalar("float32"),
            "next.success": _scalar("bool"),
            "next.done": _scalar("bool"),
        },
        env_state_names=[f"{obj}_{field}" for obj in objects for field in POSE_FIELDS],
        rollout=rollout,
    )


def _pusht_spec() -> EnvSpec:
    def rollout(seed: int, steps: int, render: bool) -> Iterator[RecordedFrame]:
        from replay_check.policies.pusht import rollout_pusht

        return rollout_pusht(seed, render=render, max_steps=steps)

    vector = {"dtype": "float32", "shape": [2], "names": {"motors": ["motor_0", "motor_1"]}}
    return EnvSpec(
        name="pusht",
        fps=10,
        robot_type="2d pointer",
        task="Push the T-shaped block onto the T-shaped target.",
        default_steps=300,
        features={
            PUSHT_IMAGE_KEY: {"dtype": "video", "shape": [96, 96, 3], "names": ["height", "width", "channel"]},
            "observation.state": vector,
            "action": vector,
            "next.reward": _scalar("float32"),
            "next.success": _scalar("bool"),
            "next.done": _scalar("bool"),
        },
        env_state_names=[f"keypoint_{i}_{axis}" for i in range(8) for axis in ("x", "y")],
        rollout=rollout,
    )


ENVS: dict[str, Callable[[], EnvSpec]] = {
    "aloha-insertion": lambda: _aloha_spec(
        "aloha-insertion", "Insert the peg into the socket.", ("peg", "socket"), "insertion"
    ),
    "aloha-transfer-cube": lambda: _aloha_spec(
        "aloha-transfer-cube",
        "Pick up the cube with the right arm and transfer it to the left arm.",
        ("cube",),
        "transfer_cube",
    ),
    "pusht": _pusht_spec,
}


def env_spec(env: str) -> EnvSpec:
    """The recording recipe of `env`, one of ENVS."""
    if env not in ENVS:
        raise InputError(f"unknown environment {env!r}; expected one of {', '.join(sorted(ENVS))}")
    return ENVS[env]()


def dataset_features(spec: EnvSpec, *, env_state: bool) -> dict[str, dict]:
    """The info.json features of a recording, with observation.environment_state when asked."""
    features = dict(spec.features)
    if env_state:
        names = spec.env_state_names
        features["observation.environment_state"] = {"dtype": "float32", "shape": [len(names)], "names": names}
    return features


def frame_row(frame: RecordedFrame, features: dict[str, dict], *, last: bool) -> dict:
    """One writer row from a rollout frame; next.done is True on an episode's last row only."""
    row = {
        "observation.state": np.asarray(frame.state, dtype=np.float32),
        "action": np.asarray(frame.action, dtype=np.float32),
        "next.reward": np.array([frame.reward], dtype=np.float32),
        "next.success": np.array([frame.success], dtype=bool),
        "next.done": np.array([last], dtype=bool),
    }
    if "observation.environment_state" in features:
        row["observation.environment_state"] = np.asarray(frame.environment_state, dtype=np.float32)
    for key, spec in features.items():
        if spec["dtype"] == "video":
            if key not in frame.images:
                raise InputError(f"rollout frame has no image {key!r}; it has {sorted(frame.images)}")
            row[key] = frame.images[key]
    return row


def _lookahead(frames: Iterator[RecordedFrame]) -> Iterator[tuple[RecordedFrame, bool]]:
    """Pair each frame with whether it is the last one, without holding the episode in memory."""
    previous = None
    for frame in frames:
        if previous is not None:
            yield previous, False
        previous = frame
    if previous is not None:
        yield previous, True


def record_dataset(
    env: str,
    episodes: int,
    out: Path,
    *,
    seed: int = 0,
    env_state: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    steps: int | None = None,
) -> RecordSummary:
    """Record `episodes` scripted episodes of `env` (episode i from seed + i) into a dataset at `out`.

    `steps` caps each episode (default: the environment's full length); a PushT episode may end sooner
    when the block is placed. Nothing is left at `out` if recording fails.
    """
    spec = env_spec(env)
    if episodes < 1:
        raise InputError(f"episodes is {episodes}; expected at least 1")
    steps = spec.default_steps if steps is None else steps
    if steps < 1:
        raise InputError(f"steps is {steps}; expected at least 1")
    features = dataset_features(spec, env_state=env_state)
    lengths, success, seeds = [], [], []
    bar = tqdm(
        total=episodes * steps,
        desc=f"record {env}",
        unit="frame",
        file=sys.stderr,
        disable=not progress or not sys.stderr.isatty(),
    )
    try:
        with DatasetWriter(out, fps=spec.fps, features=features, robot_type=spec.robot_type,
                           overwrite=overwrite) as writer:
            for i in range(episodes):
                length, reached = 0, False
                for frame, last in _lookahead(spec.rollout(seed + i, steps, True)):
                    writer.add_frame(frame_row(frame, features, last=last), task=spec.task)
                    length, reached = length + 1, reached or bool(frame.success)
                    bar.update(1)
                writer.save_episode()
                bar.update(steps - length)
                lengths.append(length)
                success.append(reached)
                seeds.append(seed + i)
    finally:
        bar.close()
    return RecordSummary(Path(out), episodes, sum(lengths), lengths, success, seeds)
