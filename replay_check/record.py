"""Record scripted episodes into a LeRobot v3.0 dataset whose ground truth we know.

`record_dataset` picks an environment's scripted policy (declared by its family), rolls out
`episodes` seeds (seed, seed+1, ...) and streams every row into `DatasetWriter`. Features mirror the
public datasets of each family (lerobot/aloha_sim_*, lerobot/pusht) so that replay-check treats
recordings exactly like hub data, plus, on request, observation.environment_state with the true
object state.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from replay_check.dataset.writer import DatasetWriter
from replay_check.errors import InputError
from replay_check.families import record_env, record_env_names
from replay_check.policies import EnvSpec, RecordedFrame


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


def env_spec(env: str) -> EnvSpec:
    """The recording recipe of `env`, declared by one of the registered families."""
    factory = record_env(env)
    if factory is None:
        raise InputError(f"unknown environment {env!r}; expected one of {', '.join(record_env_names())}")
    return factory()


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
    if seed < 0 or seed + episodes - 1 >= 2**31:
        raise InputError(f"seed is {seed}; expected 0 <= seed and seed + episodes - 1 < 2**31")
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
