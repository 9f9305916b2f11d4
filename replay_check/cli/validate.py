"""`replay-check validate`: validate many episodes on a local pool or Ray and write a batch summary."""

from __future__ import annotations

import dataclasses
import sys

import click

from replay_check.cli.options import check_dataset_options, dataset_options, replay_options
from replay_check.executors import EXECUTORS
from replay_check.validate import ProgressLine, ValidateRequest, validate_dataset


@click.command("validate")
@dataset_options
@click.option("--episodes", default="all", show_default=True, metavar="all|START:STOP[:STEP]|3,7,9",
              help="Episodes to validate (START:STOP[:STEP] excludes STOP, like a Python slice).")
@replay_options
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Episodes at once [default: number of CPUs; with Ray: cluster CPUs / --cpus-per-task].")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="local: a pool of reused worker processes; ray: one Ray task per episode (replay-check[ray]).")
@click.option("--ray-address", default=None, metavar="HOST:PORT",
              help="Ray cluster for --executor ray [default: $RAY_ADDRESS, else a private local Ray instance].")
@click.option("--cpus-per-task", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="CPUs each episode's Ray task requests.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Kill an episode's worker after this long and record it as an error.")
@click.option("--force", is_flag=True, help="Redo episodes that already have a report with the same settings.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots in each episode's report.md.")
@click.option("--stack", "stacks", multiple=True, metavar="NAME|PINS",
              help="Replay on this physics stack (repeat: one batch and summary per stack).")
@click.option("--offline", is_flag=True, help="Build stacks from uv's cache only (also: UV_OFFLINE=1).")
@click.option("-q", "--quiet", is_flag=True, help="No live progress line.")
def command(root, repo_id, revision, episodes, replay, workers, executor, ray_address, cpus_per_task, timeout,
            force, strict, no_plots, stacks, offline, quiet):
    """Validate many episodes of a dataset and write summary.json/md/html and junit.xml.

    Episodes run in reused worker processes (or as Ray tasks with --executor ray); a crash, a dead
    worker or a timeout marks that episode "error" and the rest go on. Re-running skips episodes
    already reported with the same settings (--force redoes them), so an interrupted batch resumes.
    Exit code: 0 all pass (or warn, unless --strict), 1 any fail, 2 bad input, 3 no fail but an episode
    errored or did not run, 130 interrupted.

    \b
    Examples:
      replay-check validate --repo-id lerobot/aloha_sim_insertion_human --episodes 0:10 --mode state
      replay-check validate --root data/pusht --workers 2 --thresholds thresholds.toml --strict
      replay-check validate --root data/aloha --mode state --stack installed --stack aloha-2023
      replay-check validate --repo-id lerobot/pusht --executor ray --ray-address 10.0.0.5:6379
    """
    check_dataset_options(root, repo_id, revision)
    request = ValidateRequest(
        root=root,
        repo_id=repo_id,
        revision=revision,
        episodes=episodes,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        cpus_per_task=cpus_per_task,
        **replay,
        timeout=timeout,
        force=force,
        plots=not no_plots,
        offline=offline,
    )
    codes = [_validate_one(dataclasses.replace(request, stack=stack), quiet, strict, len(stacks) > 1)
             for stack in (stacks or (None,))]
    sys.exit(next((code for code in (130, 1, 3) if code in codes), 0))  # interrupted > fail > error


def _validate_one(request: ValidateRequest, quiet: bool, strict: bool, label: bool) -> int:
    """One batch (one stack): run it, print its counts and failures; returns its exit code."""
    progress = None if quiet or not sys.stderr.isatty() else ProgressLine(sys.stderr)
    try:
        batch = validate_dataset(request, on_event=progress)
    except KeyboardInterrupt:
        click.echo("\ninterrupted before any episode ran", err=True)
        sys.exit(130)
    finally:
        if progress is not None:
            progress.close()
    c = batch.counts
    on = f" on stack {request.stack}" if label else ""
    click.echo(f"{batch.summary['dataset']['name']}{on}: {c['total']} episodes: {c['pass']} pass, {c['warn']} warn, "
               f"{c['fail']} fail, {c['error']} error, {c['skipped']} skipped "
               f"({batch.summary['run']['resumed']} reused from earlier runs)")
    for entry in batch.summary["episodes"]:
        if entry["status"] in ("fail", "error"):
            first = entry["first_divergence_step"]
            where = "" if first is None else f" at step {first}"
            note = entry["message"] or "; ".join(entry["reasons"][:1])
            click.echo(f"  episode {entry['episode']}: {entry['status'].upper()}{where} {note}".rstrip())
    if batch.interrupted:
        click.echo("interrupted: the summary lists what finished; re-run the same command to resume", err=True)
    click.echo(f"summary: {batch.paths['html']}")
    hint = _recorded_stack_hint(batch, request.stack)
    if hint:
        click.echo(hint, err=True)
    return batch.exit_code(strict)


def _recorded_stack_hint(batch, stack: str | None) -> str | None:
    """After FAILs on this environment: how to validate on the stack the profile's data were recorded on."""
    from replay_check.profiles import available_profiles

    profile = available_profiles().get(batch.summary.get("settings", {}).get("profile"))
    if not batch.counts["fail"] or stack not in (None, "installed") or profile is None or not profile.recorded_stack:
        return None
    return (f"hint: {profile.name} data were recorded on stack {profile.recorded_stack}; check whether the failures "
            f"reproduce there: add --stack recorded (or --stack installed --stack recorded to compare)")
