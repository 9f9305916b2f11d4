"""`replay-check view`: open a saved Rerun recording (.rrd) in the Rerun viewer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import click

from replay_check.errors import OperationalError

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
    """A complete .rrd: the magic at the start and the end-of-recording footer rerun-sdk 0.41 writes on close."""
    if not path.is_file():
        raise click.BadParameter(f"{path} does not exist or is not a file; expected a .rrd recording",
                                 param_hint="PATH")
    with path.open("rb") as handle:
        head = handle.read(len(RRD_MAGIC))
    if head != RRD_MAGIC:
        raise click.BadParameter(f"{path} is not a Rerun recording (it does not start with the RRF magic bytes)",
                                 param_hint="PATH")
    import warnings

    from rerun.chunk import RrdReader

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            RrdReader(path)
        except Exception as exc:  # noqa: BLE001  (the bindings raise bare exceptions for damaged files)
            raise click.BadParameter(f"{path} is a damaged Rerun recording ({exc})", param_hint="PATH") from exc
    if any("no footer" in str(warning.message) for warning in caught):
        raise click.BadParameter(f"{path} is truncated or was never closed (no end-of-recording footer); "
                                 "re-run the replay to write it again", param_hint="PATH")


def _port_free(bind: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((bind, port))
        except OSError:
            return False
    return True


def _free_port(bind: str) -> int:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((bind, 0))
        return sock.getsockname()[1]


def _choose_port(option: str, given: int | None, default: int, bind: str) -> int:
    """The given port if free (else a one-line error), or the default, or any free port when the default is taken."""
    port = given or default
    if _port_free(bind, port):
        return port
    if given:
        raise click.BadParameter(f"port {given} on {bind} is already in use; pass another {option}",
                                 param_hint=option)
    chosen = _free_port(bind)
    click.echo(f"port {default} is in use on {bind}; using {chosen} for {option}", err=True)
    return chosen


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
        raise click.UsageError("no display (DISPLAY, WAYLAND_DISPLAY unset); use --web for a browser")
    if not web and (web_port or grpc_port or bind != LOCALHOST):
        raise click.UsageError("--web-port, --grpc-port and --bind apply to --web")
    if web:
        web_port = _choose_port("--web-port", web_port, WEB_PORT_DEFAULT, bind)
        grpc_port = _choose_port("--grpc-port", grpc_port, GRPC_PORT_DEFAULT, bind)
        click.echo(f"serving {path} at {web_url(bind, web_port)} (Ctrl-C stops)")
    try:
        code = subprocess.call(viewer_argv(path, web=web, web_port=web_port, grpc_port=grpc_port, bind=bind))
    except KeyboardInterrupt:
        code = 0
    except OSError as exc:
        raise OperationalError(f"cannot start the Rerun viewer: {exc}") from exc
    if code != 0:
        raise OperationalError(f"the Rerun viewer exited with status {code}")
