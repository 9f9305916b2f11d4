"""`replay-check view`: open a saved Rerun recording (.rrd) in the Rerun viewer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

RRD_MAGIC = b"RRF"  # every .rrd starts with RRF2 (older files RRF0/RRF1)


LOCALHOST = "127.0.0.1"
WEB_PORT_DEFAULT = 9090
GRPC_PORT_DEFAULT = 9876


def rerun_command() -> list[str]:
    """The bundled rerun binary itself, not its `python -m rerun_cli` wrapper.

    The wrapper runs the binary as a child: stopping the wrapper (a test, the browser check, a supervisor)
    would leave the server running on its ports, so we start the binary directly when it is there.
    """
    try:
        import rerun_cli
    except ImportError:  # rerun-sdk without its CLI package: let Python report it when run
        return [sys.executable, "-m", "rerun_cli"]
    binary = Path(rerun_cli.__file__).parent / ("rerun.exe" if sys.platform.startswith("win") else "rerun")
    return [str(binary)] if binary.is_file() and os.access(binary, os.X_OK) else [sys.executable, "-m", "rerun_cli"]


def viewer_argv(path: Path, *, web: bool, web_port: int | None, grpc_port: int | None = None,
                bind: str = LOCALHOST) -> list[str]:
    """The rerun CLI of this environment (the one matching the installed rerun-sdk) opening `path`.

    The web viewer is served with `--serve-web` (no browser is opened) and binds `bind`: this machine only
    unless the user asks for more, since anyone reaching the port sees the recording.
    """
    argv = [*rerun_command(), str(path)]
    if web:
        argv += ["--serve-web", "--bind", bind, "--web-viewer-port", str(web_port or WEB_PORT_DEFAULT),
                 "--port", str(grpc_port or GRPC_PORT_DEFAULT)]
    return argv


def web_url(bind: str, web_port: int | None) -> str:
    host = LOCALHOST if bind in ("0.0.0.0", "::", "") else bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{web_port or WEB_PORT_DEFAULT}"


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
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the data server behind the web viewer (with --web) [default: 9876].")
@click.option("--bind", default=LOCALHOST, show_default=True,
              help="Address the web viewer listens on (with --web); 0.0.0.0 exposes it to the network.")
def command(path: Path, web: bool, web_port: int | None, grpc_port: int | None, bind: str) -> None:
    """Open a Rerun recording written by `replay-check run` in the Rerun viewer.

    Without a display (ssh, containers) use --web and open the printed address in a browser.

    \b
    Examples:
      replay-check view reports/aloha_sim_insertion_human/episode_000000/recording.rrd
      replay-check view recording.rrd --web --web-port 9090
      replay-check view recording.rrd --web --bind 0.0.0.0    # reachable from other machines
    """
    _check_rrd(path)
    if not web and not _has_display():
        raise click.ClickException("no display (DISPLAY, WAYLAND_DISPLAY unset); use --web for a browser")
    if web:
        click.echo(f"serving {path} at {web_url(bind, web_port)} (Ctrl-C stops)")
    try:
        code = subprocess.call(viewer_argv(path, web=web, web_port=web_port, grpc_port=grpc_port, bind=bind))
    except KeyboardInterrupt:
        code = 0
    except OSError as exc:
        raise click.ClickException(f"cannot start the Rerun viewer: {exc}") from exc
    if code != 0:
        raise click.ClickException(f"the Rerun viewer exited with status {code}")
