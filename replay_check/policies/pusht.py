"""The project's scripted PushT pusher: plan a push by simulating candidates, walk around the T, push.

Each cycle tries short straight pushes from contact points along the T's outline (three directions,
two lengths) in a private copy of the physics and keeps the one that brings the T's keypoints closest
to the goal's, discounted by the walk to its contact point. The agent then goes around the block
(never through it) to a standoff point, pushes, backs off, and the next cycle re-plans from what
really happened. Physics is quasi-static (space damping 0), so a push's effect ends with the push.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from replay_check.policies import RecordedFrame
from replay_check.sims.pusht import GOAL_POSE, PushTAdapter, keypoints_from_pose, rotation

PlanarPose = tuple[float, float, float]  # block body origin x, y (units) and angle (rad)
AGENT_RADIUS = 15.0
GAP = 5.0  # standoff between agent and block before a push
ARENA_MIN, ARENA_MAX = 22.0, 490.0  # agent targets stay off the walls (at 5 and 506)
COG_LOCAL = np.array([0.0, 45.0])  # gym-pusht's centre of gravity in the body frame
DETOUR_RADIUS = 105.0  # circle around the centre of gravity that clears the T plus the agent
PUSH_DIRECTIONS_DEG = (-25.0, 0.0, 25.0)
PUSH_STEPS = 3
PUSH_ADVANCES = (6.0, 15.0)  # how far the target moves per push step (units)
WALK_WEIGHT = 0.01  # keypoint error (units) one unit of walking is worth
# The T's outline in the body frame: (start, end, outward normal, margin kept from each end).
# Margins keep the agent's disc out of the two concave corners under the bar.
T_EDGES = (
    ((-60, 0), (60, 0), (0, -1), (4, 4)),
    ((60, 0), (60, 30), (1, 0), (4, 4)),
    ((60, 30), (15, 30), (0, 1), (4, 18)),
    ((15, 30), (15, 120), (1, 0), (18, 4)),
    ((15, 120), (-15, 120), (0, 1), (4, 4)),
    ((-15, 120), (-15, 30), (-1, 0), (4, 18)),
    ((-15, 30), (-60, 30), (0, 1), (18, 4)),
    ((-60, 30), (-60, 0), (-1, 0), (4, 4)),
)
RECTS = (((-60.0, 0.0), (60.0, 30.0)), ((-15.0, 30.0), (15.0, 120.0)))  # (min, max) corners
CONTACT_SPACING = 12.0


@dataclass(frozen=True)
class Push:
    """A planned push: stand at `start`, then command `targets` one per step."""

    start: np.ndarray
    targets: tuple[np.ndarray, ...]
    predicted_error: float


def contact_points() -> list[tuple[np.ndarray, np.ndarray]]:
    """(point, outward normal) samples along the T's outline, body frame."""
    samples = []
    for start, end, normal, (m0, m1) in T_EDGES:
        a, b, n = np.array(start, float), np.array(end, float), np.array(normal, float)
        length = np.linalg.norm(b - a)
        usable = length - m0 - m1
        count = max(1, int(usable // CONTACT_SPACING) + 1)
        for s in np.linspace(m0, length - m1, count) if count > 1 else [m0 + usable / 2]:
            samples.append((a + (b - a) * s / length, n))
    return samples


CONTACTS = contact_points()
GOAL_KEYPOINTS = keypoints_from_pose(*GOAL_POSE).reshape(8, 2)


def keypoint_error(pose: PlanarPose) -> float:
    """Mean distance (units) between the T's keypoints at `pose` and at the goal."""
    return float(np.linalg.norm(keypoints_from_pose(*pose).reshape(8, 2) - GOAL_KEYPOINTS, axis=1).mean())


def distance_to_t(point: np.ndarray, pose: PlanarPose) -> float:
    """Distance from a world point to the T (0 inside)."""
    local = rotation(-pose[2]) @ (np.asarray(point) - np.array(pose[:2]))
    best = np.inf
    for low, high in RECTS:
        outside = np.maximum(np.maximum(np.array(low) - local, local - np.array(high)), 0.0)
        best = min(best, float(np.hypot(*outside)))
    return best


def segment_clear(a: np.ndarray, b: np.ndarray, pose: PlanarPose, clearance: float) -> bool:
    """Whether the agent's disc can travel a -> b without coming within `clearance` of the T."""
    n = max(2, int(np.linalg.norm(b - a) / 3.0) + 1)
    return all(distance_to_t(a + (b - a) * t, pose) > clearance for t in np.linspace(0.0, 1.0, n))


class _Planner:
    """Candidate pushes simulated in a private gym-pusht space (same substep loop as env.step)."""

    def __init__(self) -> None:
        self.sim = PushTAdapter("pusht", cameras={})
        # Contact counting (gym-pusht's only post-solve work) is not needed here and costs a third.
        self.sim.env.collision_handeler.post_solve = _ignore_contact

    def simulate(self, agent: np.ndarray, pose: PlanarPose, targets) -> PlanarPose:
        """Block pose after commanding `targets` from rest; the PD and substeps are gym-pusht's."""
        self.sim.set_pose(agent, pose)
        env = self.sim.env
        body, space, dt = env.agent, env.space, env.dt
        kp, kv = float(env.k_p), float(env.k_v)
        substeps = int(1 / (dt * env.control_hz))
        for target in targets:
            tx, ty = float(target[0]), float(target[1])
            for _ in range(substeps):
                (px, py), (vx, vy) = body.position, body.velocity
                body.velocity = (vx + (kp * (tx - px) - kv * vx) * dt, vy + (kp * (ty - py) - kv * vy) * dt)
                space.step(dt)
        return self.sim.block_pose()

    def plan(self, agent: np.ndarray, pose: PlanarPose) -> Push | None:
        rot = rotation(pose[2])
        origin = np.array(pose[:2])
        best: tuple[float, Push] | None = None
        for point, normal in CONTACTS:
            contact = origin + rot @ point
            outward = rot @ normal
            start = contact + outward * (AGENT_RADIUS + GAP)
            if np.any(start < ARENA_MIN) or np.any(start > ARENA_MAX):
                continue
            walk = float(np.linalg.norm(start - agent))
            for angle in np.deg2rad(PUSH_DIRECTIONS_DEG):
                direction = rotation(angle) @ -outward
                for advance in PUSH_ADVANCES:
                    targets = tuple(
                        np.clip(np.round(start + direction * advance * (k + 1)), ARENA_MIN, ARENA_MAX)
                        for k in range(PUSH_STEPS)
                    )
                    retreat = np.clip(np.round(start), ARENA_MIN, ARENA_MAX)
                    after = self.simulate(start, pose, (*targets, retreat))
                    error = keypoint_error(after)
                    score = error + WALK_WEIGHT * walk
                    if best is None or score < best[0]:
                        best = (score, Push(start, (*targets, retreat), error))
        return None if best is None else best[1]


def _ignore_contact(arbiter, space, data) -> None:
    return None


def _walk_target(agent: np.ndarray, goal: np.ndarray, pose: PlanarPose) -> np.ndarray:
    """Next waypoint towards `goal`: straight if the way is clear, else around the T's detour circle."""
    if segment_clear(agent, goal, pose, AGENT_RADIUS + 2.0):
        return goal
    cog = np.array(pose[:2]) + rotation(pose[2]) @ COG_LOCAL
    here = np.arctan2(*(agent - cog)[::-1])
    there = np.arctan2(*(goal - cog)[::-1])
    turn = (there - here + np.pi) % (2 * np.pi) - np.pi
    step = np.clip(turn, -np.deg2rad(40.0), np.deg2rad(40.0))
    radius = max(DETOUR_RADIUS, float(np.linalg.norm(agent - cog)))
    return cog + radius * np.array([np.cos(here + step), np.sin(here + step)])


def rollout_pusht(seed: int, *, render: bool = True, max_steps: int = 300) -> Iterator[RecordedFrame]:
    """Frames of one scripted episode from gym-pusht's seeded reset, until success or `max_steps`."""
    adapter = PushTAdapter("pusht", {"top": (96, 96)})
    adapter.reset(seed)
    pusher = _Pusher()
    try:
        for _ in range(max_steps):
            action = pusher.act(adapter)
            frame = RecordedFrame(
                state=adapter.state(),
                action=action,
                environment_state=adapter.environment_state(),
                images={"observation.image": adapter.render("top")} if render else {},
            )
            adapter.advance(action)
            frame.reward, frame.success = adapter.reward(), adapter.success()
            yield frame
            if frame.success:
                return
    finally:
        adapter.close()
        pusher.planner.sim.close()


class _Pusher:
    """Walk to the planned push's start, push, back off; re-plan when the block has moved."""

    def __init__(self) -> None:
        self.planner = _Planner()
        self.push: Push | None = None
        self.planned_for: PlanarPose | None = None
        self.queue: list[np.ndarray] = []

    def act(self, adapter: PushTAdapter) -> np.ndarray:
        if self.queue:
            return self.queue.pop(0)
        agent, pose = adapter.state(), adapter.block_pose()
        if self.push is None or self.planned_for is None or _moved(self.planned_for, pose):
            self.push, self.planned_for = self.planner.plan(agent, pose), pose
        if self.push is None:
            return _integer(np.clip(agent, ARENA_MIN, ARENA_MAX))
        speed = float(np.linalg.norm(adapter.env.agent.velocity))
        if np.linalg.norm(agent - self.push.start) < 3.0 and speed < 30.0:
            self.queue = [_integer(t) for t in self.push.targets]
            self.push = None
            return self.queue.pop(0)
        return _integer(np.clip(_walk_target(agent, self.push.start, pose), ARENA_MIN, ARENA_MAX))


def _moved(before: PlanarPose, after: PlanarPose) -> bool:
    shift = np.hypot(after[0] - before[0], after[1] - before[1])
    return bool(shift > 0.5 or abs(after[2] - before[2]) > 0.005)


def _integer(target: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(target, dtype=np.float64))
