"""A family defined entirely in the test suite is recorded, replayed and validated with no package edit."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from replay_check.cli import cli as main
from tests import toy_family
from tests.report_paths import report_folder

PROFILE = """
name = "toy-slider"
description = "A slider pushing a box (defined in tests/toy_family.py)"
adapter = "toy"
family_module = "tests.toy_family"
task = "{model}"
fps = 20
objects = ["box"]

[match]
robot_type = ["toy slider"]
state_dim = 1
action_dim = 1

[cameras]
"observation.images.top" = "top"

[state]
slider = [0, 1]

[state_kinds]
slider = "arm"

[tolerances]
arm_rad = 0.01
object_mm = 5.0
image_psnr_db = 25.0
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The model and profile files, and a 2-episode dataset recorded with the toy policy."""
    base = tmp_path_factory.mktemp("toy")
    model = base / "toy.xml"
    model.write_text(toy_family.MODEL_XML)
    toy_family.use_model(model)
    profile = base / "toy.toml"
    profile.write_text(PROFILE.format(model=model))
    root = base / "toy_data"
    result = CliRunner().invoke(main, ["record", "--env", "toy-slider", "--episodes", "2", "--steps", "30",
                                       "--out", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    return root, profile


@pytest.mark.slow
def test_run_replays_the_toy_family_with_report_and_recording(toy, tmp_path):
    root, profile = toy
    result = CliRunner().invoke(main, ["run", "--root", str(root), "--episode", "1", "--profile", str(profile),
                                       "--report-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    folder = report_folder(tmp_path, root) / "episode_000001"
    report = json.loads((folder / "report.json").read_text())
    assert report["profile"] == "toy-slider"
    assert report["verdict"]["status"] == "pass", report["verdict"]
    assert report["initial_state"]["method"] == "environment_state"
    assert report["summary"]["state_max_abs"] < 1e-5
    assert report["summary"]["object_position_error_mm_max"] < 0.001
    assert report["summary"]["image_psnr_mean"] > 30
    assert report["summary"]["replayed_success"] is True and report["summary"]["recorded_success"] is True
    assert (folder / "recording.rrd").stat().st_size > 0
    assert (folder / "report.md").exists()


@pytest.mark.slow
def test_validate_runs_the_toy_family_in_worker_processes(toy, tmp_path):
    root, profile = toy
    result = CliRunner().invoke(main, ["validate", "--root", str(root), "--profile", str(profile), "--workers", "2",
                                       "--report-dir", str(tmp_path), "--mode", "state", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((report_folder(tmp_path, root) / "summary.json").read_text())
    assert summary["counts"]["pass"] == 2, summary


def test_a_physics_change_makes_the_toy_replay_diverge(toy, tmp_path):
    """The SimSpec physics override reaches the toy adapter: a 4x coarser timestep changes the outcome."""
    from replay_check.dataset import open_dataset
    from replay_check.profiles import load_profile
    from replay_check.replay import adapter_for, replay_episode
    from replay_check.steps import ReplaySettings

    root, profile_path = toy
    profile = load_profile(profile_path)
    episode = open_dataset(root=root).episode(0)
    settings = ReplaySettings(mode="state", tolerances=profile.tolerances)
    same = replay_episode(episode, profile, settings)
    adapter = adapter_for(episode, profile, physics={"timestep": 0.02})
    try:
        changed = replay_episode(episode, profile, settings, adapter=adapter)
    finally:
        adapter.close()
    assert same.summary["state_max_abs"] < 1e-5
    assert changed.summary["state_max_abs"] > same.summary["state_max_abs"] * 10
