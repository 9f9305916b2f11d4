"""Confusion table of the cause analysis: each cause injected into recorded episodes, true x reported.

    python scripts/cause_confusion.py [--shared /work/shared/datasets] [--no-synthetic] [--no-shared]

Synthetic: in-memory ALOHA sweeps and a scripted transfer-cube handover (tests/sim_episodes.py).
Shared: the ALOHA scripted samples (initial state estimated from frame 0, state mode; image cases on
their first 20 frames) and the PushT keypoints sample. Injected: nothing (true cause none), an action
offset from step k, another episode's actions, an initial pose moved 20 mm (ALOHA) / 15 px (PushT),
a physics change (friction x0.2, a 20 ms timestep), a video shifted by 2 frames, a dimmer light.
Prints one line per case and the table (rows: true cause, columns: reported cause).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

import replay_check  # noqa: F401  (GL backend)
from replay_check import cause
from replay_check.dataset import open_dataset
from replay_check.initial_state import recover_initial_state
from replay_check.profiles import available_profiles, select_profile
from replay_check.replay import adapter_for, replay_episode, sim_spec
from replay_check.sims import make_adapter
from replay_check.sims.base import InitialState, ObjectUncertainty, Pose
from replay_check.steps import ReplaySettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
LABELS = ("none", "data", "initial_state", "physics", "marginal", "rendering")


@dataclasses.dataclass
class Case:
    name: str
    truth: str
    episode: object
    profile: object
    mode: str = "state"
    physics: dict | None = None
    render: dict | None = None
    initial: InitialState | None = None
    ensemble: int | None = None


def run_case(case: Case) -> tuple[str, str, float]:
    spec = dataclasses.replace(sim_spec(case.episode, case.profile, case.physics), render=dict(case.render or {}))
    settings = ReplaySettings(mode=case.mode, tolerances=case.profile.tolerances, ensemble=case.ensemble)
    start = time.perf_counter()
    result = replay_episode(case.episode, case.profile, settings, adapter=make_adapter(spec),
                            initial_state=case.initial, render_workers=0)
    result, diagnosis = cause.run(result, case.episode, case.profile, spec)
    return result.verdict.cause or "none", f"{result.verdict.status}: {diagnosis.line or '-'}", \
        time.perf_counter() - start


def offset(episode, k: int, column: int, amount: float):
    actions = episode.action.copy()
    actions[k:, column] += amount
    return dataclasses.replace(episode, action=actions)


def shifted(episode, frames: int = 2):
    from tests.sim_episodes import ArrayFrames

    key = next(iter(episode.cameras))
    source = episode.cameras[key]
    all_frames = list(source.frames) if hasattr(source, "frames") else list(source.iter_frames(0))
    late = ArrayFrames(all_frames[frames:] + all_frames[-1:] * frames)
    return dataclasses.replace(episode, cameras={key: late})


def truncated(episode, length: int):
    """The first `length` rows and frames (frames decoded into memory)."""
    from tests.sim_episodes import ArrayFrames

    cameras = {}
    for key, source in episode.cameras.items():
        frames = []
        for frame in source.iter_frames(0):
            frames.append(frame)
            if len(frames) == length:
                break
        cameras[key] = ArrayFrames(frames)
    env = None if episode.environment_state is None else episode.environment_state[:length]
    return dataclasses.replace(episode, state=episode.state[:length], action=episode.action[:length],
                               timestamps=episode.timestamps[:length], environment_state=env,
                               reward=None if episode.reward is None else episode.reward[:length],
                               success=None if episode.success is None else episode.success[:length],
                               cameras=cameras)


def moved(initial: InitialState, delta) -> InitialState:
    objects = {n: Pose(p.position + np.asarray(delta), p.quaternion) for n, p in initial.objects.items()}
    return dataclasses.replace(initial, objects=objects)


def synthetic_cases() -> list[Case]:
    from tests.sim_episodes import aloha_episode, scripted_aloha_episode

    profile = available_profiles()["aloha-transfer-cube"]
    sweep = aloha_episode("transfer_cube", steps=60, seed=0)
    other = aloha_episode("transfer_cube", steps=60, seed=7)
    filmed = aloha_episode("transfer_cube", steps=14, seed=3, render=True, size=(96, 128))
    row = sweep.environment_state[0]
    truth = InitialState(sweep.state[0], {"cube": Pose(row[:3], row[3:7])}, "estimated",
                         uncertainty={"cube": ObjectUncertainty(np.array([0.0005, 0.0005, 0.0]))})
    hand = scripted_aloha_episode("transfer_cube", 0, frame0=False, env_state=True)
    hrow = hand.environment_state[0]
    near = InitialState(hand.state[0], {"cube": Pose(hrow[:3] + [0.0001, 0, 0], hrow[3:7])}, "estimated",
                        uncertainty={"cube": ObjectUncertainty(np.array([0.0003, 0.0003, 0.0]))})
    return [
        Case("sweep consistent", "none", sweep, profile),
        Case("sweep consistent, ensemble 8", "none", sweep, profile, ensemble=8),
        Case("sweep offset 0.3 rad from step 30", "data", offset(sweep, 30, 8, 0.3), profile),
        Case("sweep offset 0.1 rad from step 20", "data", offset(sweep, 20, 1, 0.1), profile),
        Case("sweep other episode's actions", "data", dataclasses.replace(sweep, action=other.action), profile),
        Case("sweep initial pose +20 mm", "initial_state", sweep, profile, initial=moved(truth, [0.02, 0, 0])),
        Case("sweep timestep 20 ms", "physics", sweep, profile, physics={"timestep": 0.02}),
        Case("filmed frames shifted +2", "data", shifted(filmed), profile, mode="images"),
        Case("filmed light x0.4", "rendering", filmed, profile, mode="images", render={"light_scale": 0.4}),
        Case("handover consistent", "none", hand, profile),
        Case("handover offset 0.1 rad from step 150", "data", offset(hand, 150, 7, 0.1), profile),
        Case("handover friction x0.2", "physics", hand, profile, physics={"friction_scale": 0.2}),
        Case("handover timestep 4 ms", "physics", hand, profile, physics={"timestep": 0.004}),
        Case("handover +0.1 mm (sigma 0.3 mm), ensemble 8", "marginal", hand, profile, initial=near, ensemble=8),
    ]


def shared_cases(root: Path) -> list[Case]:
    cases = []
    for folder in ("aloha_sim_transfer_cube_scripted_sample", "aloha_sim_insertion_scripted_sample"):
        dataset = open_dataset(root=root / folder)
        profile = select_profile(dataset.meta, None)
        episodes = [dataset.episode(i) for i in (0, 1)]
        for index, episode in enumerate(episodes):
            adapter = adapter_for(episode, profile)
            initial = recover_initial_state(episode, profile, adapter)
            adapter.close()
            tag = f"{folder.split('_scripted')[0]} #{index}"
            other = episodes[1 - index]
            cases += [
                Case(f"{tag} as recorded", "none", episode, profile, initial=initial),
                Case(f"{tag} offset 0.1 rad from step 150", "data", offset(episode, 150, 7, 0.1), profile,
                     initial=initial),
                Case(f"{tag} episode {1 - index}'s actions", "data", dataclasses.replace(episode, action=other.action),
                     profile, initial=initial),
                Case(f"{tag} initial pose +20 mm", "initial_state", episode, profile,
                     initial=moved(initial, [0.02, 0, 0])),
                Case(f"{tag} friction x0.2", "physics", episode, profile, initial=initial,
                     physics={"friction_scale": 0.2}),
            ]
            if index == 0:  # 20 frames cannot reach the task's success: judge them without it
                short = truncated(episode, 20)
                no_success = dataclasses.replace(profile, recorded_success_default=None)
                cases += [Case(f"{tag} first 20 frames shifted +2", "data", shifted(short), no_success,
                               mode="images", initial=initial),
                          Case(f"{tag} first 20 frames, light x0.4", "rendering", short, no_success, mode="images",
                               initial=initial, render={"light_scale": 0.4})]
    dataset = open_dataset(root=root / "pusht_keypoints_sample")
    profile = select_profile(dataset.meta, None)
    for index in range(dataset.meta.total_episodes):
        episode = dataset.episode(index)
        other = dataset.episode((index + 1) % dataset.meta.total_episodes)
        n = min(episode.length, other.length)
        cases += [
            Case(f"pusht #{index} as recorded", "none", episode, profile),
            Case(f"pusht #{index} offset 10 px from step 50", "data", offset(episode, 50, 0, 10.0), profile),
            Case(f"pusht #{index} next episode's actions", "data",
                 dataclasses.replace(truncated(episode, n), action=other.action[:n]), profile),
        ]
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--no-shared", action="store_true")
    args = parser.parse_args()
    cases = ([] if args.no_synthetic else synthetic_cases()) + ([] if args.no_shared else shared_cases(args.shared))
    table = {t: dict.fromkeys(LABELS, 0) for t in LABELS}
    for case in cases:
        reported, line, seconds = run_case(case)
        table[case.truth][reported] += 1
        mark = "ok " if reported == case.truth else "BAD"
        print(f"{mark} {case.name:50s} true={case.truth:13s} reported={reported:13s} {seconds:6.1f}s  {line}",
              flush=True)
    print()
    print("| true \\ reported | " + " | ".join(LABELS) + " |")
    print("|---|" + "---|" * len(LABELS))
    for truth in LABELS:
        if any(table[truth].values()):
            print(f"| {truth} | " + " | ".join(str(table[truth][r]) for r in LABELS) + " |")


if __name__ == "__main__":
    main()
