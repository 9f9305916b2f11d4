"""In-memory ALOHA episodes recorded through the adapter, for engine tests that need no files.

The trajectory is a smooth joint-space sweep (not a task demonstration): enough to test restore,
step alignment, metrics and fault localisation in milliseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gym_aloha.constants import START_ARM_POSE

from replay_check.dataset.episode import DatasetMeta, Episode, Feature
from replay_check.sims.aloha import AlohaAdapter, qpos_to_robot_state
from replay_check.sims.base import InitialState, Pose

MOTORS = tuple(
    f"{side}_{joint}"
    for side in ("left", "right")
    for joint in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
)
TASK_TEXT = {
    "transfer_cube": "Pick up the cube with the right arm and transfer it to the left arm.",
    "insertion": "Insert the peg into the socket.",
}


@dataclass
class ArrayFrames:
    """A FrameSource over frames already in memory."""

    frames: list[np.ndarray]

    @property
    def height(self) -> int:
        return self.frames[0].shape[0]

    @property
    def width(self) -> int:
        return self.frames[0].shape[1]

    def iter_frames(self, start: int = 0) -> Iterator[np.ndarray]:
        yield from self.frames[start:]


def sweep_actions(steps: int, seed: int) -> np.ndarray:
    """Smooth joint targets around the start pose, different per seed."""
    rng = np.random.default_rng(seed)
    start = qpos_to_robot_state(np.array(START_ARM_POSE))
    t = np.arange(steps)[:, None] / 50.0
    amplitude = rng.uniform(0.05, 0.25, size=14)
    phase = rng.uniform(0, 2 * np.pi, size=14)
    actions = start + amplitude * np.sin(2 * np.pi * 0.5 * t + phase) - amplitude * np.sin(phase)
    actions[:, [6, 13]] = np.clip(start[[6, 13]] + 0.4 * np.sin(2 * np.pi * 0.4 * t + phase[[6, 13]]), 0.0, 1.0)
    return actions


def aloha_episode(task: str = "transfer_cube", steps: int = 60, seed: int = 0, *, render: bool = False,
                  env_state: bool = True, objects: dict[str, Pose] | None = None,
                  size: tuple[int, int] = (480, 640)) -> Episode:
    """Record `steps` rows (state before action t, action t) of a sweep in the joint-space task."""
    adapter = AlohaAdapter(task, {"top": size})
    start = qpos_to_robot_state(np.array(START_ARM_POSE))
    if objects is None:
        rng = np.random.default_rng(1000 + seed)
        objects = {name: Pose(np.array([rng.uniform(-0.15, 0.15), rng.uniform(0.45, 0.6), 0.05]))
                   for name in adapter.object_names}
    adapter.restore(InitialState(start, objects, "truth"))
    actions = sweep_actions(steps, seed)
    states, env_states, frames, rewards = [], [], [], []
    for t in range(steps):
        states.append(adapter.state())
        env_states.append(adapter.environment_state())
        if render:
            frames.append(adapter.render("top"))
        adapter.step(actions[t])
        rewards.append(adapter.reward())
    adapter.close()
    features = {
        "observation.state": Feature("observation.state", "float32", (14,), MOTORS),
        "action": Feature("action", "float32", (14,), MOTORS),
    }
    if render:
        features["observation.images.top"] = Feature("observation.images.top", "video", (*size, 3))
    meta = DatasetMeta(Path("/memory") / f"aloha_{task}", "v3.0", 50.0, "aloha", 1, steps, features,
                       (TASK_TEXT[task],))
    return Episode(
        meta=meta,
        index=0,
        task=TASK_TEXT[task],
        timestamps=np.arange(steps) / 50.0,
        state=np.array(states),
        action=actions,
        environment_state=np.array(env_states) if env_state else None,
        reward=np.array(rewards),
        success=np.array(rewards) >= 4,
        cameras={"observation.images.top": ArrayFrames(frames)} if render else {},
    )


@functools.cache
def scripted_rows(task: str, seed: int) -> tuple:
    """The full scripted demonstration of (task, seed), physics only, rolled out once per test session.

    Several modules check the same 400-step demonstrations; each costs seconds to plan and refine.
    """
    from replay_check.policies.aloha import rollout_aloha

    return tuple(rollout_aloha(task, seed, render=False))


def scripted_aloha_episode(task: str, seed: int, *, frame0: bool = True, env_state: bool = False) -> Episode:
    """A full scripted demonstration (physics only), with frame 0 rendered for the estimator when asked.

    Rows are rounded to float32 as a dataset stores them.
    """
    from replay_check.policies.aloha import sample_object_poses

    rows = scripted_rows(task, seed)
    state = np.array([r.state for r in rows], dtype=np.float32).astype(np.float64)
    cameras = {}
    features = {
        "observation.state": Feature("observation.state", "float32", (14,), MOTORS),
        "action": Feature("action", "float32", (14,), MOTORS),
    }
    if frame0:
        adapter = AlohaAdapter(task, {"top": (480, 640)})
        adapter.restore(InitialState(state[0], sample_object_poses(task, seed), "truth"))
        cameras["observation.images.top"] = ArrayFrames([adapter.render("top")])
        adapter.close()
        features["observation.images.top"] = Feature("observation.images.top", "video", (480, 640, 3))
    meta = DatasetMeta(Path("/memory") / f"scripted_{task}", "v3.0", 50.0, "aloha", 1, len(rows), features,
                       (TASK_TEXT[task],))
    return Episode(
        meta=meta,
        index=0,
        task=TASK_TEXT[task],
        timestamps=np.arange(len(rows)) / 50.0,
        state=state,
        action=np.array([r.action for r in rows], dtype=np.float32).astype(np.float64),
        environment_state=np.array([r.environment_state for r in rows]) if env_state else None,
        reward=np.array([r.reward for r in rows]),
        success=np.array([r.success for r in rows]),
        cameras=cameras,
    )


def pusht_episode(steps: int = 12) -> tuple[Episode, InitialState]:
    """A PushT push straight up into the block, rendered at 96x96, without environment_state.

    Returned with its true initial state, so replays need no estimate; the block is still measured
    in every frame (the dataset stores no keypoints).
    """
    from replay_check.sims.pusht import PushTAdapter

    adapter = PushTAdapter("pusht", {"top": (96, 96)})
    initial = InitialState(np.array([256.0, 420.0]), {"block": Pose.planar(256.0, 300.0, 0.3)}, "truth")
    adapter.restore(initial)
    actions = np.array([[256.0, 420.0 - 12 * k] for k in range(steps)])
    states, frames = [], []
    for action in actions:
        states.append(adapter.state())
        frames.append(adapter.render("top"))
        adapter.step(action)
    adapter.close()
    features = {
        "observation.state": Feature("observation.state", "float32", (2,), ("x", "y")),
        "action": Feature("action", "float32", (2,), ("x", "y")),
        "observation.image": Feature("observation.image", "video", (96, 96, 3)),
    }
    meta = DatasetMeta(Path("/memory") / "pusht", "v3.0", 10.0, "2d pointer", 1, steps, features, ("Push the T.",))
    episode = Episode(meta=meta, index=0, task="Push the T.", timestamps=np.arange(steps) / 10.0,
                      state=np.array(states), action=actions, environment_state=None, reward=None, success=None,
                      cameras={"observation.image": ArrayFrames(frames)})
    return episode, initial
