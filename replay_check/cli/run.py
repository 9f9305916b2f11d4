"""`replay-check run`: replay one episode, write its report and Rerun recording."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from replay_check.cli.options import check_dataset_options, check_flag_needs, dataset_options, replay_options
from replay_check.metric_table import SUMMARY_LINES
from replay_check.pipeline import RerunOptions, RunRequest, run_episode


@click.command("run")
@dataset_options
@click.option("--episode", type=click.IntRange(min=0), default=0, show_default=True, help="Episode index.")
@replay_options
@click.option("--rrd", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to save the Rerun recording [default: <report folder>/recording.rrd].")
@click.option("--no-rerun", is_flag=True, help="Do not build a Rerun recording.")
@click.option("--no-scene", is_flag=True, help="Leave the simulator's 3-D scene out of the Rerun recording.")
@click.option("--spawn", is_flag=True, help="Open the Rerun viewer while replaying.")
@click.option("--serve", is_flag=True, help="Serve the recording to a web viewer and print its URL.")
@click.option("--web-port", type=int, default=None, help="Port of the web viewer (with --serve).")
@click.option("--grpc-port", type=int, default=None, help="Port of the gRPC data server (with --serve).")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=75, show_default=True,
              help="JPEG quality of logged images.")
@click.option("--raw-images", is_flag=True, help="Log images uncompressed (large .rrd files).")
@click.option("--video", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write a side-by-side recorded | replayed | diff MP4.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots in report.md.")
@click.option("--stack", "stacks", multiple=True, metavar="NAME|PINS",
              help="Replay on this physics stack (installed, aloha-2023, recorded, \"mujoco==3.3.0\", ...); "
                   "repeat to compare stacks.")
@click.option("--offline", is_flag=True, help="Build stacks from uv's cache only (also: UV_OFFLINE=1).")
@click.option("--render-workers", type=click.IntRange(min=0), default=None,
              help="Processes rendering frames while physics steps ahead [default: one per core for MuJoCo "
                   "families; for PushT one that steps the physics too; none on one core]; 0 renders in step "
                   "order in this process. Results are identical either way.")
@click.option("--strict", is_flag=True, help="A marginal episode fails (default: it warns).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def command(root, repo_id, revision, episode, replay, rrd, no_rerun, no_scene, spawn, serve, web_port,
            grpc_port, jpeg_quality, raw_images, video, no_plots, stacks, offline, render_workers, strict, quiet):
    """Replay one recorded episode in its simulator and report where it diverges.

    With no --root or --repo-id, replays the sample episode shipped with replay-check (no network).
    Exit code: 0 pass or warn, 1 fail, 2 bad input.

    \b
    Examples:
      replay-check run
      replay-check run --repo-id lerobot/aloha_sim_insertion_human --episode 0
      replay-check run --root data/my_pusht --episode 3 --mode state
      replay-check run --root data/my_aloha --image-stride 5 --video ep0.mp4 --spawn
      replay-check run --root data/my_aloha --mode state --stack installed --stack aloha-2023
    """
    check_dataset_options(root, repo_id, revision)
    check_flag_needs({"--web-port": web_port, "--grpc-port": grpc_port}, "--serve", serve)
    if no_rerun:
        check_flag_needs({"--spawn": spawn, "--serve": serve, "--rrd": rrd, "--raw-images": raw_images,
                          "--no-scene": no_scene},
                         "a Rerun recording (it conflicts with --no-rerun)", False)
    request = RunRequest(
        root=root,
        repo_id=repo_id,
        revision=revision,
        episode=episode,
        **replay,
        rerun=None if no_rerun else RerunOptions(rrd, spawn, serve, web_port, grpc_port,
                                                 None if raw_images else jpeg_quality, scene=not no_scene),
        video=video,
        plots=not no_plots,
        strict=strict,
        stack=stacks[0] if len(stacks) == 1 else None,
        offline=offline,
        render_workers=render_workers,
    )
    if len(stacks) > 1:
        _run_stacks(request, list(stacks), quiet)
        return
    with _progress_bar(quiet) as progress:
        outcome = run_episode(request, progress=progress)
    for line in outcome_lines(outcome):
        click.echo(line)
    click.echo(f"report: {outcome.report_dir}")
    if outcome.rrd_path:
        click.echo(f"recording: {outcome.rrd_path}  (open with: replay-check view {outcome.rrd_path})")
    if outcome.video_path:
        click.echo(f"video: {outcome.video_path}")
    if outcome.viewer_url:
        click.echo(f"viewer: {outcome.viewer_url}")
    hint = recorded_stack_hint(outcome, request.stack)
    if hint:
        click.echo(hint, err=True)
    if outcome.viewer is not None:
        click.echo("viewer is live; press Ctrl-C to stop", err=True)
        outcome.viewer.block_until_interrupted()
    sys.exit(1 if outcome.result.verdict.status == "fail" else 0)


def recorded_stack_hint(outcome, stack: str | None) -> str | None:
    """After a FAIL on this environment: how to replay on the stack the dataset's profile says it was recorded on."""
    recorded = outcome.result.profile.recorded_stack
    if outcome.result.verdict.status != "fail" or stack not in (None, "installed") or not recorded:
        return None
    return (f"hint: {outcome.result.profile.name} data were recorded on stack {recorded}; check whether it "
            f"reproduces there: add --stack recorded (or --stack installed --stack recorded to compare)")


def _run_stacks(request: RunRequest, names: list[str], quiet: bool) -> None:
    from replay_check.stacks.multi import run_on_stacks

    with _progress_bar(quiet) as progress:
        both = run_on_stacks(request, names, progress=progress)
    for outcome, entry in zip(both.outcomes, both.section["stacks"], strict=True):
        click.echo(f"== stack {entry['label']}")
        for line in outcome_lines(outcome):
            click.echo(line)
        click.echo(f"report: {outcome.report_dir}")
        parts = entry.get("parts_from")
        if parts:
            where = parts["first_step"]
            click.echo(f"replay parts from {parts['stack']}'s: " + ("never" if where is None else f"at step {where}"))
    click.echo(f"conclusion: {both.conclusion}")
    if both.section.get("cause"):
        click.echo(f"cause: {both.section['cause']}")
    sys.exit(1 if any(o.result.verdict.status == "fail" for o in both.outcomes) else 0)


def outcome_lines(outcome) -> list[str]:
    """What a person reads after a run: the episode, how it started, key figures, verdict and reasons."""
    result, verdict, initial = outcome.result, outcome.result.verdict, outcome.result.initial_state
    residual = "" if initial.residual is None else f" (residual {initial.residual:.3g})"
    first = verdict.first_divergence_step
    lines = [
        f"{result.meta.name} episode {result.episode_index} ({result.length} frames, profile {result.profile.name})",
        f"initial state: {initial.method}{residual}",
        *_summary_lines(result.summary),
        f"verdict: {verdict.status.upper()}" + ("" if first is None else f", first divergence at step {first}"),
    ]
    if verdict.cause:
        lines.append(f"cause: {verdict.cause}" + (f": {verdict.evidence[0]}" if verdict.evidence else ""))
    return lines + [f"  - {reason}" for reason in verdict.reasons]


def _summary_lines(summary: dict) -> list[str]:
    lines = []
    for key, label in SUMMARY_LINES:
        value = summary.get(key)
        if value is None:
            continue
        lines.append(f"{label}: {value:.4g}" if isinstance(value, float) else f"{label}: {value}")
    return lines


class _progress_bar:
    """A tqdm bar on stderr, silent when quiet or not a terminal."""

    def __init__(self, quiet: bool):
        self.disabled = quiet or not sys.stderr.isatty()
        self.bar = None

    def __enter__(self):
        if self.disabled:
            return None
        from tqdm import tqdm

        def update(done: int, total: int) -> None:
            if self.bar is None:
                self.bar = tqdm(total=total, unit="step", desc="replay", file=sys.stderr)
            self.bar.n = done
            self.bar.refresh()

        return update

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False
