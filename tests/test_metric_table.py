"""The metric table: declared units and tolerance keys, per-group limits, profile kinds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from replay_check import metric_table as mt
from replay_check.divergence import checks_for
from replay_check.errors import ConfigError, ProfileError
from replay_check.profiles import available_profiles, load_profile
from replay_check.thresholds import tolerances_for


@pytest.fixture(scope="module")
def insertion():
    return available_profiles()["aloha-insertion"]


def test_state_group_units_come_from_the_declared_kind_not_the_name(insertion):
    renamed = dataclasses.replace(insertion, state_groups={"wrist": (0, 6)}, state_kinds={"wrist": "arm"})
    [check] = [c for c in checks_for(renamed, renamed.tolerances, ["group/wrist"]) if c.group == "wrist"]
    assert check.unit == "rad" and check.limit == insertion.tolerances.arm_rad


def test_object_units_follow_the_family():
    pusht = available_profiles()["pusht"]
    columns = ["object_err/block", "object_angle_err_deg/block"]
    checks = {c.group: c for c in checks_for(pusht, pusht.tolerances, columns)}
    assert checks["object/block"].unit == "px" and checks["object/block"].limit == pusht.tolerances.block_px
    assert checks["object_angle/block"].unit == "deg"


def test_a_per_group_tolerance_wins_over_the_kind(insertion):
    tolerances = tolerances_for(insertion, None, {"left_gripper": 0.25, "object/peg": 40.0})
    checks = {c.group: c for c in checks_for(insertion, tolerances,
                                             ["group/left_gripper", "group/right_gripper", "object_err/peg"])}
    assert checks["left_gripper"].limit == 0.25
    assert checks["right_gripper"].limit == insertion.tolerances.gripper
    assert checks["object/peg"].limit == pytest.approx(0.040) and checks["object/peg"].unit == "mm"
    assert tolerances.as_dict()["groups"] == {"left_gripper": 0.25, "object/peg": 40.0}
    assert "groups" not in insertion.tolerances.as_dict()


def test_unknown_group_tolerance_is_named(insertion):
    with pytest.raises(ConfigError, match="left_elbow"):
        tolerances_for(insertion, None, {"left_elbow": 0.1})


def test_a_profile_group_without_kind_is_an_error(tmp_path, insertion):
    text = insertion.path.read_text().replace('left_arm = "arm"\n', "")
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match="left_arm"):
        load_profile(path)


def test_named_reads_columns_by_pattern():
    columns = {"image/observation.images.top/psnr": np.zeros(2), "image/x/ssim": np.zeros(2), "state_rms": 0}
    assert mt.named(columns, mt.IMAGE_PSNR) == {"observation.images.top": "image/observation.images.top/psnr"}
