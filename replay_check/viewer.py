"""Rerun viewer processes: spawn a native viewer or serve the web viewer, and say where it is.

Kept apart from the logging code (`viz.RerunSink`): this module starts and checks processes and ports
and returns the Rerun sinks a recording stream writes to; it logs nothing itself.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.parse

import rerun as rr

from replay_check.errors import ViewerError

WEB_PORT_DEFAULT = 9090
GRPC_PORT_DEFAULT = 9876


def has_display() -> bool:
    """Whether a native viewer window can open (always assumed off Linux)."""
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def local_uri(uri: str) -> str:
    """A server URI bound to all interfaces, as a browser on this machine should reach it."""
    return uri.replace("0.0.0.0", "127.0.0.1")


def web_viewer_url(grpc_uri: str, web_port: int) -> str:
    return f"http://127.0.0.1:{web_port}/?url={urllib.parse.quote(local_uri(grpc_uri), safe='')}"


def serve(web_port: int | None, grpc_port: int | None) -> tuple[rr.GrpcServerSink, str]:
    """A gRPC server sink plus the web viewer pointed at it; (sink, URL for the browser)."""
    web_port, grpc_port = web_port or WEB_PORT_DEFAULT, grpc_port or GRPC_PORT_DEFAULT
    try:
        server = rr.GrpcServerSink(port=grpc_port)
        rr.serve_web_viewer(web_port=web_port, open_browser=False, connect_to=local_uri(server.uri))
    except Exception as exc:  # the bindings raise bare exceptions for taken ports
        raise ViewerError(f"cannot serve the Rerun viewer (ports {grpc_port}/{web_port}): {exc}") from exc
    return server, web_viewer_url(server.uri, web_port)


def spawn(port: int | None, recording: rr.RecordingStream) -> rr.GrpcSink:
    """A native viewer process listening on `port`, and the sink that feeds it."""
    port = port or GRPC_PORT_DEFAULT
    if not has_display():
        raise ViewerError("cannot spawn the Rerun viewer: no display (DISPLAY, WAYLAND_DISPLAY unset); "
                          "use --serve, or open the saved .rrd later with `replay-check view --web`")
    try:
        rr.spawn(port=port, connect=False, recording=recording)
    except Exception as exc:
        raise ViewerError(f"cannot spawn the Rerun viewer on port {port}: {exc}") from exc
    if not port_open(port):
        raise ViewerError(f"the spawned Rerun viewer is not listening on port {port}; expected a viewer")
    return rr.GrpcSink(f"rerun+http://127.0.0.1:{port}/proxy")
