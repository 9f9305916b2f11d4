"""Profile loading, automatic selection from dataset metadata, and tolerance overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay_check.dataset.episode import DatasetMeta, Feature
from replay_check.errors import ConfigError, ProfileError
from replay_check.profiles import available_profiles, select_profile
from replay_check.thresholds import load_thresholds, parse_tolerance_options, tolerances_for


def meta(robot_type="aloha", tasks=("Insert the peg into the socket.",), state=14, repo_id=None, fps=50) -> DatasetMeta:
    features = {
        "observation.state": Feature("observation.state", "float32", (state,)),
        "action": Feature("action", "float32", (state,)),
    }
    return DatasetMeta(Path("/x/ds"), "v3.0", fps, robot_type, 1, 10, features, tuple(tasks), repo_id=repo_id)


def test_bundled_profiles_load_with_their_objects_and_cameras():
    profiles = available_profiles()
    assert profiles["aloha-insertion"].objects == ("peg", "socket")
    assert profiles["aloha-transfer-cube"].objects == ("cube",)
    assert profiles["aloha-insertion"].cameras == {"observation.images.top": "top"}
    assert profiles["aloha-insertion"].state_groups["right_gripper"] == (13, 14)


def test_selection_uses_task_text_and_repo_id():
    assert select_profile(meta()).name == "aloha-insertion"
    cube = meta(tasks=("Pick up the cube with the right arm and transfer it to the left arm.",))
    assert select_profile(cube).name == "aloha-transfer-cube"
    by_repo = meta(tasks=("",), repo_id="lerobot/aloha_sim_transfer_cube_human")
    assert select_profile(by_repo).name == "aloha-transfer-cube"


def test_unmatched_dataset_lists_the_profiles():
    with pytest.raises(ProfileError, match="matches no environment profile.*aloha-insertion"):
        select_profile(meta(robot_type="so100", tasks=("fold",), state=6))


def test_ambiguous_dataset_asks_for_a_profile():
    with pytest.raises(ProfileError, match="--profile"):
        select_profile(meta(tasks=("",)))


def test_explicit_profile_wins_and_unknown_name_is_an_error():
    assert select_profile(meta(), "aloha-transfer-cube").name == "aloha-transfer-cube"
    with pytest.raises(ProfileError, match="unknown profile 'nope'"):
        select_profile(meta(), "nope")


def test_thresholds_file_applies_default_then_profile_then_options(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[default]\narm_rad = 0.2\nobject_mm = 7\n[profiles.aloha-insertion]\narm_rad = 0.01\n")
    profile = available_profiles()["aloha-insertion"]
    tol = tolerances_for(profile, load_thresholds(path), parse_tolerance_options(["gripper=0.3"]))
    assert (tol.arm_rad, tol.object_mm, tol.gripper) == (0.01, 7.0, 0.3)
    other = tolerances_for(available_profiles()["aloha-transfer-cube"], load_thresholds(path))
    assert other.arm_rad == 0.2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\narm_radians = 1\n", "unknown tolerance 'arm_radians'"),
        ("[default]\narm_rad = 'big'\n", "must be a number"),
        ("[default]\nconsecutive_steps = 2.5\n", "must be an integer"),
        ("[gates]\nx = 1\n", "unknown section"),
        ("[default\n", "not valid TOML"),
    ],
)
def test_bad_thresholds_files_are_rejected_with_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_thresholds(path)


def test_tolerance_option_needs_key_and_number():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_tolerance_options(["arm_rad"])
    with pytest.raises(ConfigError, match="not a number"):
        parse_tolerance_options(["arm_rad=x"])


def test_unknown_robot_type_is_no_information():
    assert select_profile(meta(robot_type="unknown")).name == "aloha-insertion"
