"""`replay-check record`: make a dataset from the project's scripted policies (known ground truth)."""

from __future__ import annotations

from pathlib import Path

import click

from replay_check.families import record_env_names
from replay_check.record import record_dataset


@click.command("record")
@click.option("--env", "env", required=True,
              help=f"Environment to record, declared by a simulator family ({', '.join(record_env_names())}).")
@click.option("--episodes", type=click.IntRange(min=1), default=1, show_default=True, help="Number of episodes.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Dataset folder to create.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="Seed of episode 0 (>= 0); episode i uses seed + i.")
@click.option("--env-state/--no-env-state", default=True, show_default=True,
              help="Store the true object state as observation.environment_state.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it already holds a LeRobot dataset.")
@click.option("--steps", type=click.IntRange(min=1), default=None, hidden=True,
              help="Cap every episode at this many steps (tests).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def command(env, episodes, out, seed, env_state, overwrite, steps, quiet):
    """Record scripted episodes into a LeRobot v3.0 dataset.

    ALOHA episodes are planned in end-effector space, then replayed in the joint-space task, which is
    what gets recorded (50 fps, 480x640 top camera). Object poses are drawn from the seed, so the truth
    is known; --no-env-state leaves it out, like the public datasets.

    \b
    Examples:
      replay-check record --env aloha-transfer-cube --episodes 2 --out data/tc
      replay-check record --env aloha-insertion --episodes 1 --seed 7 --no-env-state --out data/ins
      replay-check record --env pusht --episodes 5 --out data/pusht
    """
    summary = record_dataset(env, episodes, out, seed=seed, env_state=env_state, overwrite=overwrite,
                             progress=not quiet, steps=steps)
    click.echo(f"wrote {summary.episodes} episodes, {summary.frames} frames to {summary.root}")
    for seed_i, length, ok in zip(summary.seeds, summary.lengths, summary.success, strict=True):
        click.echo(f"  seed {seed_i}: {length} frames, {'success' if ok else 'no success'}")
    click.echo(f"success rate: {summary.success_rate:.0%}")
