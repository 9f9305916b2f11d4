"""Divergence onsets, NaN handling, checks per profile, summaries and verdict rules on synthetic columns."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from replay_check import divergence
from replay_check.divergence import Check, checks_for, decide_verdict, find_divergences, first_divergence
from replay_check.profiles import Tolerances, available_profiles

NAN = np.nan
# Fixed here, not read from envs/*.toml, so profile tuning does not move these expectations.
TOL = Tolerances(arm_rad=0.05, gripper=0.1, object_mm=15.0, image_psnr_db=20.0, consecutive_steps=5,
                 warn_fraction=0.5)


@pytest.fixture(scope="module")
def aloha():
    return available_profiles()["aloha-transfer-cube"]


@pytest.fixture(scope="module")
def pusht():
    return available_profiles()["pusht"]


def test_first_divergence_needs_k_consecutive_values_beyond_the_limit():
    values = np.array([0, 2, 2, 0, 2, 2, 2, 0, 2], dtype=float)
    assert first_divergence(values, 1.0, k=3) == 4
    assert first_divergence(values, 1.0, k=2) == 1
    assert first_divergence(values, 1.0, k=1) == 1
    assert first_divergence(values, 1.0, k=4) is None
    assert first_divergence(values, 2.0, k=1) is None  # at the limit is not beyond it


def test_first_divergence_lower_is_worse():
    psnr = np.array([45, 44, 18, 17, 16, 30], dtype=float)
    assert first_divergence(psnr, 20.0, k=3, higher_is_worse=False) == 2
    assert first_divergence(psnr, 20.0, k=4, higher_is_worse=False) is None


def test_nan_is_not_measured_it_neither_breaks_nor_extends_a_run():
    # image stride 2: every other step is NaN; three measured bad frames in a row diverge
    strided = np.array([0, NAN, 5, NAN, 5, NAN, 5, NAN], dtype=float)
    assert first_divergence(strided, 1.0, k=3) == 2
    # NaN alone never counts as beyond the limit
    assert first_divergence(np.array([NAN, NAN, NAN, NAN]), 1.0, k=1) is None
    assert first_divergence(np.array([5, NAN, NAN, 5]), 1.0, k=3) is None
    # +inf PSNR (identical frames) is perfectly fine
    assert first_divergence(np.array([math.inf] * 6), 20.0, k=1, higher_is_worse=False) is None


def test_first_divergence_rejects_k_below_one():
    with pytest.raises(ValueError, match="got 0"):
        first_divergence(np.zeros(3), 1.0, k=0)


def aloha_columns(length: int = 100) -> dict[str, np.ndarray]:
    groups = ("left_arm", "left_gripper", "right_arm", "right_gripper")
    cols = {f"group/{g}": np.full(length, 0.001) for g in groups}
    cols["object_err/cube"] = np.full(length, 0.002)
    cols["image/observation.images.top/psnr"] = np.full(length, 44.0)
    cols["unstable"] = np.zeros(length)
    return cols


def test_offset_in_one_group_from_step_k_diverges_in_that_group_only(aloha):
    cols = aloha_columns()
    cols["group/right_arm"][37:] = 0.3
    checks = checks_for(aloha, TOL, cols)
    found = find_divergences(cols, checks, k=5)
    assert found["right_arm"] == 37
    assert {g for g, s in found.items() if s is not None} == {"right_arm"}
    assert set(found) == {"left_arm", "left_gripper", "right_arm", "right_gripper", "object/cube",
                          "image/observation.images.top", "unstable"}
    onset = found.details["right_arm"]
    assert onset.value == pytest.approx(0.3) and onset.limit == pytest.approx(0.05) and onset.unit == "rad"


def test_aloha_checks_use_the_right_tolerance_per_group(aloha):
    tol = dataclasses.replace(TOL, arm_rad=0.01, gripper=0.2, object_mm=7.0, image_psnr_db=33.0)
    checks = {c.group: c for c in checks_for(aloha, tol, aloha_columns())}
    assert checks["left_arm"].limit == 0.01 and checks["right_gripper"].limit == 0.2
    assert checks["object/cube"].limit == pytest.approx(0.007)  # column in metres, tolerance in mm
    assert checks["object/cube"].scale == 1000.0
    image = checks["image/observation.images.top"]
    assert image.limit == 33.0 and image.higher_is_worse is False
    assert checks["unstable"].consecutive == 1


def test_object_error_in_metres_is_reported_in_millimetres(aloha):
    cols = aloha_columns()
    cols["object_err/cube"][10:] = 0.020  # 20 mm > 15 mm
    found = find_divergences(cols, checks_for(aloha, TOL, cols), k=5)
    assert found["object/cube"] == 10
    assert found.details["object/cube"].value == pytest.approx(20.0)
    assert "20 mm > limit 15 mm" in found.details["object/cube"].describe()


def test_pusht_checks_use_pixels_and_degrees(pusht):
    cols = {"group/agent": np.zeros(20), "object_err/block": np.zeros(20),
            "object_angle_err_deg/block": np.zeros(20)}
    cols["object_angle_err_deg/block"][4:] = 10.0
    checks = {c.group: c for c in checks_for(pusht, pusht.tolerances, cols)}
    assert checks["agent"].limit == pusht.tolerances.agent_px
    assert checks["object/block"].limit == pusht.tolerances.block_px and checks["object/block"].unit == "px"
    assert checks["object_angle/block"].limit == pusht.tolerances.block_deg
    found = find_divergences(cols, list(checks.values()), k=5)
    assert found == {"agent": None, "object/block": None, "object_angle/block": 4}


def test_columns_that_were_never_produced_get_no_check(aloha):
    cols = {"group/left_arm": np.zeros(5), "unstable": np.zeros(5)}
    assert {c.group for c in checks_for(aloha, TOL, cols)} == {"left_arm", "unstable"}


def test_two_checks_of_one_group_keep_the_earlier_onset():
    cols = {"a": np.array([0, 0, 0, 9, 9]), "b": np.array([0, 9, 9, 9, 9])}
    checks = [Check("g", "a", 1.0), Check("g", "b", 1.0)]
    assert find_divergences(cols, checks, k=2) == {"g": 1}


def test_summarize_is_json_ready_and_caps_infinite_psnr():
    cols = {
        "state_err/a": np.array([0.0, 0.3, NAN]),
        "state_err/b": np.array([0.1, 0.0, NAN]),
        "state_rms": np.array([0.05, 0.15, NAN]),
        "group/arm": np.array([0.1, 0.3, NAN]),
        "object_err/cube": np.array([0.001, 0.004, NAN]),
        "image/top/psnr": np.array([math.inf, 40.0, NAN]),
        "image/top/ssim": np.array([1.0, 0.9, NAN]),
        "success": np.array([0.0, 1.0, NAN]),
        "reward": np.array([0.0, 4.0, NAN]),
    }
    s = divergence.summarize(cols, state_names=["a", "b"], objects=["cube", "peg"])
    assert s["state_max_abs"] == pytest.approx(0.3)
    assert s["per_joint_max_abs"] == {"a": pytest.approx(0.3), "b": pytest.approx(0.1)}
    assert s["state_rmse"] == pytest.approx(math.sqrt((0.05**2 + 0.15**2) / 2))
    assert s["object_position_error_mm_max"] == pytest.approx(4.0)
    assert s["per_object_position_error_max"] == {"cube": pytest.approx(0.004)}  # peg never measured
    assert s["image_psnr_mean"] == pytest.approx((divergence.PSNR_CAP_DB + 40.0) / 2)
    assert s["image_frames_identical"] == 1 and s["image_frames_compared"] == 2
    assert s["replayed_success"] is True and s["recorded_success"] is None
    assert s["image_mad_mean"] is None  # not measured -> None, never NaN
    assert s["steps_replayed"] == 2


def test_summarize_counts_steps_an_object_was_not_seen():
    cols = {
        "object_err/cube": np.array([0.001, NAN, 0.002, NAN, NAN]),
        "object_gap/cube": np.array([0.0, 1.0, 0.0, 1.0, NAN]),  # last step: not measured (image stride)
        "object_gap/peg": np.array([1.0, 0.0, 0.0, 1.0, NAN]),
    }
    s = divergence.summarize(cols, state_names=[], objects=["cube", "peg"])
    assert s["object_gaps"] == {"cube": 2, "peg": 2}
    assert s["object_gap_steps"] == 3  # steps 0, 1 and 3
    assert s["object_position_error_mm_max"] == pytest.approx(2.0)
    none = divergence.summarize({"object_err/cube": np.array([0.001])}, state_names=[], objects=["cube"])
    assert none["object_gaps"] == {} and none["object_gap_steps"] is None


def test_summarize_treats_planar_objects_as_pixels():
    cols = {"object_err/block": np.array([1.0, 6.0]), "object_angle_err_deg/block": np.array([0.5, 2.0])}
    s = divergence.summarize(cols, state_names=[], objects=["block"])
    assert s["object_units"] == "px" and s["object_position_error_max"] == 6.0
    assert s["object_position_error_mm_max"] is None
    assert s["object_angle_error_deg_max"] == 2.0


def verdict(aloha, divergences, *, length=100, replayed=True, recorded=True, unstable=None):
    return decide_verdict(divergences, {}, length=length, tolerances=TOL,
                          replayed_success=replayed, recorded_success=recorded, unstable_step=unstable)


def test_verdict_pass_when_nothing_diverges(aloha):
    v = verdict(aloha, {"left_arm": None, "image/top": None})
    assert (v.status, v.first_divergence_step, v.reasons) == ("pass", None, ())


def test_early_divergence_fails_late_one_warns(aloha):
    cols = aloha_columns()
    cols["group/left_gripper"][20:] = 0.5
    cols["image/observation.images.top/psnr"][70:] = 12.0
    found = find_divergences(cols, checks_for(aloha, TOL, cols), k=5)
    v = verdict(aloha, found)
    assert v.status == "fail" and v.first_divergence_step == 20
    assert v.reasons[0].startswith("left_gripper diverges at step 20")
    assert "0.5" in v.reasons[0] and "0.1" in v.reasons[0]
    assert any("image/observation.images.top diverges at step 70" in r and "PSNR 12 dB < limit 20 dB" in r
               for r in v.reasons)
    late_only = verdict(aloha, {"left_gripper": None, "image/top": 70})
    assert late_only.status == "warn" and late_only.first_divergence_step == 70
    assert verdict(aloha, {"left_arm": 49}).status == "fail"
    assert verdict(aloha, {"left_arm": 50}).status == "warn"


def test_success_mismatch_rules(aloha):
    missed = verdict(aloha, {"left_arm": None}, replayed=False, recorded=True)
    assert missed.status == "fail" and "does not reach the task's success" in missed.reasons[0]
    surprise = verdict(aloha, {"left_arm": None}, replayed=True, recorded=False)
    assert surprise.status == "warn" and surprise.first_divergence_step is None
    unknown = verdict(aloha, {"left_arm": None}, replayed=False, recorded=None)
    assert unknown.status == "pass"


def test_unstable_simulation_fails_at_its_step(aloha):
    cols = aloha_columns()
    cols["unstable"][:] = NAN
    cols["unstable"][:43] = 0.0
    cols["unstable"][43] = 1.0
    found = find_divergences(cols, checks_for(aloha, TOL, cols), k=5)
    assert found["unstable"] == 43
    v = verdict(aloha, found, replayed=False, recorded=None, unstable=43)
    assert v.status == "fail" and v.first_divergence_step == 43
    assert sum("unstable" in r for r in v.reasons) == 1 and "step 43" in v.reasons[0]


def test_a_late_blow_up_still_fails(aloha):
    v = verdict(aloha, {"left_arm": None, "unstable": 95}, replayed=False, recorded=None)
    assert v.status == "fail" and v.first_divergence_step == 95


def test_gaps_follow_the_columns_cadence():
    from replay_check import gaps

    strided = np.full(12, NAN)
    strided[[0, 3, 6, 9]] = 1.0  # image stride 3: nothing missing
    assert gaps.missing_steps(strided).size == 0
    strided[6] = NAN
    assert gaps.missing_steps(strided).tolist() == [6]
    every = np.array([1.0, NAN, NAN, 1.0, 1.0, NAN, 1.0])
    assert gaps.missing_steps(every).tolist() == [1, 2, 5] and gaps.gap_starts(every).tolist() == [1, 5]
