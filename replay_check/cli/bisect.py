"""`replay-check bisect`: find the first release of a package whose replay outcome differs from a good one's."""

from __future__ import annotations

import click

from replay_check.bisect import bisect_releases, markdown, write
from replay_check.cli.options import dataset_options, replay_options
from replay_check.pipeline import RunRequest, episode_report_dir


@click.command("bisect")
@dataset_options
@click.option("--episode", type=click.IntRange(min=0), default=0, show_default=True, help="Episode index.")
@click.option("--package", required=True, help="The package whose releases are searched, e.g. mujoco.")
@click.option("--good", required=True, metavar="VERSION", help="A release with the expected outcome.")
@click.option("--bad", required=True, metavar="VERSION", help="A later release with a different outcome.")
@click.option("--offline", is_flag=True, help="Use only uv's cache and stacks already built.")
@replay_options
def command(root, repo_id, revision, episode, package, good, bad, offline, replay):
    """Binary-search the releases of PACKAGE between --good and --bad for the first changed outcome.

    Each release is tried as the installed stack with that one pin (the resolver may move its dependents;
    the table says what moved). An outcome is the verdict status and the replayed success. Releases that do
    not resolve or do not run are skipped and listed. Writes bisect.json and bisect.md.

    \b
    Examples:
      replay-check bisect --root data/insertion --episode 0 --package mujoco --good 2.3.7 --bad 3.8.1 --mode state
    """
    request = RunRequest(root=root, repo_id=repo_id, revision=revision, episode=episode, **replay, rerun=None)
    result = bisect_releases(request, package, good, bad, offline=offline, say=lambda t: click.echo(t, err=True))
    base = episode_report_dir(request.report_dir, result.episode["folder"], episode)
    folder = write(result, base.parent / f"{base.name}.bisect-{package}")
    click.echo(markdown(result))
    click.echo(f"bisect report: {folder}")
