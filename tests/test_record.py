"""`record`: scripted ALOHA episodes written as a LeRobot v3.0 dataset, through the library and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from replay_check.cli.record import command
from replay_check.errors import InputError, OutputError
from replay_check.families.aloha import MOTORS as ALOHA_MOTORS
from replay_check.policies.aloha import sample_object_poses
from replay_check.record import record_dataset

STEPS = 12


def _rows(root):
    return pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()


def _info(root):
    return json.loads((root / "meta" / "info.json").read_text())


@pytest.fixture(scope="module")
def transfer_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec") / "tc"
    summary = record_dataset("aloha-transfer-cube", 1, root, seed=3, progress=False, steps=STEPS)
    return root, summary


def test_records_public_layout_with_true_object_state(transfer_dataset):
    root, summary = transfer_dataset
    assert (summary.episodes, summary.frames, summary.lengths, summary.seeds) == (1, STEPS, [STEPS], [3])
    info = _info(root)
    assert (info["fps"], info["robot_type"], info["total_frames"]) == (50, "aloha", STEPS)
    features = info["features"]
    assert features["observation.state"]["shape"] == [14]
    assert features["action"]["names"] == {"motors": ALOHA_MOTORS}
    assert features["observation.images.top"]["shape"] == [480, 640, 3]
    assert features["observation.environment_state"]["names"][:3] == ["cube_x", "cube_y", "cube_z"]
    rows = _rows(root)
    assert len(rows["index"]) == STEPS
    assert rows["next.done"] == [False] * (STEPS - 1) + [True]
    env0 = np.array(rows["observation.environment_state"][0])
    np.testing.assert_allclose(env0[:3], sample_object_poses("transfer_cube", 3)["cube"].position, atol=1e-6)
    mp4 = list((root / "videos" / "observation.images.top").rglob("*.mp4"))
    assert len(mp4) == 1 and mp4[0].stat().st_size > 0
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pydict()
    assert "Pick up the cube with the right arm and transfer it to the left arm." in json.dumps(tasks)


def test_refuses_existing_folder_without_overwrite(transfer_dataset):
    root, _ = transfer_dataset
    with pytest.raises(OutputError, match="already exists"):
        record_dataset("aloha-transfer-cube", 1, root, progress=False, steps=2)


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown environment"):
        record_dataset("aloha-stack", 1, tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="episodes is 0"):
        record_dataset("aloha-insertion", 0, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_cli_records_without_env_state(tmp_path):
    out = tmp_path / "ins"
    result = CliRunner().invoke(
        command,
        ["--env", "aloha-insertion", "--episodes", "1", "--out", str(out), "--seed", "1", "--no-env-state",
         "--steps", "3", "-q"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 1 episodes, 3 frames" in result.output
    assert "observation.environment_state" not in _info(out)["features"]
    rows = _rows(out)
    assert "observation.environment_state" not in rows and len(rows["index"]) == 3


def test_cli_help_has_an_example():
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0 and "replay-check record --env" in result.output
    assert "--steps" not in result.output


def test_pusht_recording_uses_lerobot_pusht_layout(tmp_path):
    summary = record_dataset("pusht", 1, tmp_path / "pusht", seed=2, progress=False, steps=8)
    assert summary.lengths[0] <= 8
    info = _info(tmp_path / "pusht")
    assert (info["fps"], info["robot_type"]) == (10, "2d pointer")
    assert info["features"]["observation.image"]["shape"] == [96, 96, 3]
    assert info["features"]["observation.state"]["names"] == {"motors": ["motor_0", "motor_1"]}
    assert info["features"]["observation.environment_state"]["shape"] == [16]
    assert len(_rows(tmp_path / "pusht")["index"]) == summary.frames
