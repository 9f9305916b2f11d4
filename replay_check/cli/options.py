"""Options shared by several commands, as decorators (one definition, one help text)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import click

from replay_check.thresholds import load_thresholds, parse_tolerance_options


def dataset_options(func: Callable) -> Callable:
    """--root / --repo-id / --revision: where the dataset comes from."""
    func = click.option("--revision", default=None, help="Hub revision (branch, tag or commit) for --repo-id.")(func)
    func = click.option("--repo-id", default=None, metavar="ORG/NAME",
                        help="Dataset on the Hugging Face Hub (downloads only the files needed).")(func)
    func = click.option("--root", type=click.Path(path_type=Path), default=None,
                        help="Local LeRobot dataset folder (the one holding meta/).")(func)
    return func


def check_dataset_options(root: Path | None, repo_id: str | None, revision: str | None) -> None:
    """Combinations the options cannot express: a revision belongs to a Hub dataset."""
    if root is not None and repo_id is not None:
        raise click.UsageError("--root and --repo-id both given; expected one of them")
    if revision is not None and repo_id is None:
        raise click.UsageError("--revision applies to --repo-id (a Hub dataset); a --root folder has no revisions")


def check_flag_needs(given: dict[str, object], needs: str, present: bool) -> None:
    """Each option in `given` that was set needs `needs`; otherwise it would be ignored silently."""
    for option, value in given.items():
        if value not in (None, False) and not present:
            raise click.UsageError(f"{option} needs {needs}")


def replay_options(func: Callable) -> Callable:
    """Profile, mode, stride, tolerances and report folder: what changes a replay's outcome.

    The command receives them parsed, as one `replay` dict of replay_check.config.ReplayOptions fields.
    """

    @functools.wraps(func)
    def parsed(*args, **kwargs):
        thresholds = kwargs.pop("thresholds")
        kwargs["replay"] = {
            "profile": kwargs.pop("profile"),
            "mode": kwargs.pop("mode"),
            "image_stride": kwargs.pop("image_stride"),
            "thresholds": load_thresholds(thresholds) if thresholds else None,
            "tolerance_overrides": parse_tolerance_options(kwargs.pop("tolerances")),
            "report_dir": kwargs.pop("report_dir"),
            "env_state_from": kwargs.pop("env_state_from"),
            "ensemble": kwargs.pop("ensemble"),
            "resync": kwargs.pop("resync"),
        }
        return func(*args, **kwargs)

    decorators = [
        click.option("--profile", default=None, metavar="NAME|FILE.toml",
                     help="Environment profile; default: chosen from the dataset's metadata."),
        click.option("--mode", type=click.Choice(["images", "state"]), default="images", show_default=True,
                     help="'state' skips rendering: physics and state metrics only."),
        click.option("--image-stride", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Render and compare every K-th frame."),
        click.option("--thresholds", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="TOML file of tolerances ([default] and [profiles.<name>] tables)."),
        click.option("--tolerance", "tolerances", multiple=True, metavar="KEY=VALUE",
                     help="Override one tolerance, e.g. --tolerance arm_rad=0.02 (repeatable)."),
        click.option("--ensemble", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Replay N perturbed copies in state mode (poses within the initial state's "
                          "uncertainty, float32 re-rounding) and report how often the outcome holds "
                          "[default: 8 when a failing replay's cause is still open; 0: never]."),
        click.option("--resync", type=click.IntRange(min=0), default=None, metavar="K",
                     help="Re-synced replay: set the robot back to the recording every K steps and record "
                          "one-step errors [default: K=1 when the replay does not pass; 0: never]."),
        click.option("--report-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("reports"),
                     show_default=True, help="Where report folders are written."),
        click.option("--env-state-from", default=None, metavar="REPO_ID|ROOT",
                     help="Take observation.environment_state from a twin dataset (e.g. lerobot/pusht_keypoints)."),
    ]
    for decorator in reversed(decorators):
        parsed = decorator(parsed)
    return parsed
