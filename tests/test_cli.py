"""The command line: help everywhere, one-line errors with exit code 2, run end to end on a recorded dataset."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from replay_check.cli import cli
from tests.report_paths import report_folder


@pytest.fixture
def runner():
    return CliRunner()


def test_every_command_has_help_with_an_example(runner):
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert command.help and "Example" in result.output, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--root", "/nonexistent/dataset"], "/nonexistent/dataset"),
        (["run", "--root", "{tmp}", "--repo-id", "a/b"], "root"),
        (["run", "--tolerance", "arm_rad"], "KEY=VALUE"),
        (["run", "--thresholds", "{tmp}/missing.toml"], "missing.toml"),
        (["info", "--root", "{tmp}"], "meta/info.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runner, tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output


def test_hub_offline_is_a_clear_error(runner, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = runner.invoke(cli, ["run", "--repo-id", "lerobot/aloha_sim_insertion_human", "--no-rerun"])
    assert result.exit_code == 2
    assert "lerobot/aloha_sim_insertion_human" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_run_replays_a_recorded_dataset_and_writes_its_report(runner, recorded_cube, tmp_path):
    reports = tmp_path / "reports"
    result = runner.invoke(cli, ["run", "--root", str(recorded_cube), "--episode", "0", "--report-dir", str(reports),
                                 "--image-stride", "5", "-q"])
    assert result.exit_code == 0, result.output
    assert "verdict: PASS" in result.output
    folder = report_folder(reports, recorded_cube) / "episode_000000"
    report = json.loads((folder / "report.json").read_text())
    assert report["verdict"]["status"] == "pass"
    assert report["initial_state"]["method"] == "environment_state"
    assert report["summary"]["state_max_abs"] < 1e-5
    assert report["summary"]["image_psnr_mean"] > 35
    assert (folder / "recording.rrd").stat().st_size > 0
    assert (folder / "report.md").exists() and (folder / "steps.parquet").exists()


def test_run_exits_1_on_a_failed_replay(runner, recorded_cube, tmp_path):
    result = runner.invoke(cli, ["run", "--root", str(recorded_cube), "--mode", "state", "--no-rerun",
                                 "--report-dir", str(tmp_path), "--tolerance", "arm_rad=0", "--tolerance",
                                 "gripper=0", "-q"])
    assert result.exit_code == 1, result.output
    assert "verdict: FAIL" in result.output
