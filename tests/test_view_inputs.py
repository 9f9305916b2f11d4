"""`replay-check view` on bad input: one line and exit 2, never a traceback, never a silent no-op."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import rerun as rr
from click.testing import CliRunner

from replay_check.cli import cli


@pytest.fixture(scope="module")
def complete_rrd(tmp_path_factory):
    path = tmp_path_factory.mktemp("rrd") / "rec.rrd"
    stream = rr.RecordingStream("replay-check-test")
    stream.save(str(path))
    for t in range(50):
        stream.set_time("frame_index", sequence=t)
        stream.log("image", rr.Image(np.full((24, 32, 3), t, dtype=np.uint8)))
    stream.disconnect()
    return path


def _view(args, monkeypatch):
    calls = []
    monkeypatch.setattr("subprocess.call", lambda argv: calls.append(argv) or 0)
    return CliRunner().invoke(cli, ["view", *args]), calls


def test_a_truncated_recording_is_one_line_and_exit_2(complete_rrd, tmp_path, monkeypatch):
    cut = tmp_path / "cut.rrd"
    data = complete_rrd.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result, calls = _view([str(cut), "--web"], monkeypatch)
    assert result.exit_code == 2, result.output
    assert "truncated" in result.output and "Traceback" not in result.output
    assert calls == []


def test_a_complete_recording_is_served(complete_rrd, monkeypatch):
    result, calls = _view([str(complete_rrd), "--web"], monkeypatch)
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and str(complete_rrd) in calls[0]


def test_a_taken_port_is_an_error_when_given_and_replaced_when_default(complete_rrd, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result, calls = _view([str(complete_rrd), "--web", "--web-port", str(port)], monkeypatch)
        assert result.exit_code == 2, result.output
        assert f"port {port} on 127.0.0.1 is already in use" in result.output and calls == []
        monkeypatch.setattr("replay_check.cli.view.WEB_PORT_DEFAULT", port)
        result, calls = _view([str(complete_rrd), "--web"], monkeypatch)
        assert result.exit_code == 0, result.output
        served = calls[0][calls[0].index("--web-viewer-port") + 1]
        assert served != str(port) and f"127.0.0.1:{served}" in result.output


def test_ports_without_web_are_a_usage_error(complete_rrd, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    result, calls = _view([str(complete_rrd), "--web-port", "9191"], monkeypatch)
    assert result.exit_code == 2 and "apply to --web" in result.output and calls == []
