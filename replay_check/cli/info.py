"""`replay-check info`: what a dataset holds and which environment profile would replay it."""

from __future__ import annotations

import json
from typing import Any

import click

from replay_check.cli.options import check_dataset_options, dataset_options
from replay_check.dataset import LeRobotDataset, open_dataset
from replay_check.errors import ProfileError
from replay_check.profiles import select_profile


@click.command("info")
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def command(root, repo_id, revision, as_json):
    """Describe a LeRobot dataset: format, fps, features, cameras, tasks, matching profile.

    Reads metadata only: with --repo-id, no data or video file is downloaded.

    \b
    Examples:
      replay-check info --root path/to/dataset
      replay-check info --repo-id lerobot/pusht --revision main
      replay-check info --repo-id lerobot/aloha_sim_insertion_human --json
    """
    check_dataset_options(root, repo_id, revision)
    summary = dataset_summary(open_dataset(root=root, repo_id=repo_id, revision=revision))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for line in summary_lines(summary):
            click.echo(line)


def dataset_summary(dataset: LeRobotDataset) -> dict[str, Any]:
    """The facts `info` prints, as plain JSON-able data."""
    meta = dataset.meta
    try:
        profile, profile_error = select_profile(meta).name, None
    except ProfileError as exc:
        profile, profile_error = None, str(exc)
    return {
        "dataset": dataset.files.label,
        "codebase_version": meta.codebase_version,
        "fps": meta.fps,
        "robot_type": meta.robot_type,
        "total_episodes": meta.total_episodes,
        "total_frames": meta.total_frames,
        "features": [
            {"key": f.key, "dtype": f.dtype, "shape": list(f.shape), "names": list(f.names or ()) or None}
            for f in meta.features.values()
        ],
        "cameras": [
            {"key": c.key, "height": c.height, "width": c.width, "storage": c.storage, "codec": c.codec}
            for c in dataset.cameras.values()
        ],
        "tasks": list(meta.tasks),
        "profile": profile,
        "profile_error": profile_error,
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"dataset: {summary['dataset']}",
        f"codebase version: {summary['codebase_version']}",
        f"fps: {summary['fps']:g}",
        f"robot type: {summary['robot_type'] or 'unknown'}",
        f"episodes: {summary['total_episodes']}, frames: {summary['total_frames']}",
        "features:",
    ]
    width = max((len(f["key"]) for f in summary["features"]), default=0)
    for f in summary["features"]:
        lines.append(f"  {f['key']:<{width}}  {f['dtype']:<8} {tuple(f['shape'])}")
    lines.append("cameras:" if summary["cameras"] else "cameras: none")
    for c in summary["cameras"]:
        stored = (c["codec"] or "unknown codec") if c["storage"] == "video" else "images in parquet"
        lines.append(f"  {c['key']}  {c['height']}x{c['width']}  {stored}")
    lines.append("tasks:" if summary["tasks"] else "tasks: none")
    lines.extend(f"  {i}: {task}" for i, task in enumerate(summary["tasks"]))
    if summary["profile"]:
        lines.append(f"profile: {summary['profile']}")
    else:
        lines.append(f"profile: none ({summary['profile_error']})")
    return lines
