"""`replay-check view`: open a saved Rerun recording (.rrd) in the Rerun viewer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

RRD_MAGIC = b"RRF"  # every .rrd starts with RRF2 (older files RRF0/RRF1)


def viewer_argv(path: Path, *, web: bool, web_port: int | None) -> list[str]:
    """The rerun CLI of this environment (the one matching the installed rerun-sdk) opening `path`."""
    argv = [sys.executable, "-m", "rerun_cli", str(path)]
    if web:
        argv += ["--web-viewer"] + ([] if web_port is None else ["--web-viewer-port", str(web_port)])
    return argv


def _check_rrd(path: Path) -> None:
    if not path.is_file():
        raise click.BadParameter(f"{path} does not exist or is not a file; expected a .rrd recording",
                                 param_hint="PATH")
    with path.open("rb") as handle:
        head = handle.read(len(RRD_MAGIC))
    if head != RRD_MAGIC:
        raise click.BadParameter(f"{path} is not a Rerun recording (starts {head!r}, expected {RRD_MAGIC!r})",
                                 param_hint="PATH")


def _has_display() -> bool:
    return sys.platform != "linux" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command("view")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--web", is_flag=True, help="Serve a web viewer over HTTP instead of opening a window.")
@click.option("--web-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the web viewer (with --web) [default: 9090].")
def command(path: Path, web: bool, web_port: int | None) -> None:
    """Open a Rerun recording written by `replay-check run` in the Rerun viewer.

    Without a display (ssh, containers) use --web and open the printed address in a browser.

    \b
    Examples:
      replay-check view reports/aloha_sim_insertion_human/episode_000000/recording.rrd
      replay-check view recording.rrd --web --web-port 9090
    """
    _check_rrd(path)
    if not web and not _has_display():
        raise click.ClickException("no display (DISPLAY, WAYLAND_DISPLAY unset); use --web for a browser")
    try:
        code = subprocess.call(viewer_argv(path, web=web, web_port=web_port))
    except KeyboardInterrupt:
        code = 0
    except OSError as exc:
        raise click.ClickException(f"cannot start the Rerun viewer: {exc}") from exc
    if code != 0:
        raise click.ClickException(f"the Rerun viewer exited with status {code}")
