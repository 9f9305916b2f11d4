"""Per-step metrics: known values on crafted inputs, shape errors, stable column names."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from replay_check import metrics
from replay_check.steps import StepRecord

NAMES = ["l0", "l1", "lg", "r0", "r1", "rg"]
GROUPS = {"left_arm": (0, 2), "left_gripper": (2, 3), "right_arm": (3, 5), "right_gripper": (5, 6)}


def textured(seed: int = 0, shape=(120, 160, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random(shape) * 255).astype(np.uint8), (0, 0), 2)


def noisy(image: np.ndarray, amplitude: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-amplitude, amplitude + 1, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Straight float64 transcription of Wang et al. 2004 (gaussian 11 / 1.5) on BT.601 luma."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)

    def f(z):
        return gaussian_filter(z, 1.5, truncate=3.5, mode="reflect")

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


def test_psnr_of_a_uniform_offset_has_the_closed_form_value():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + 10  # mse = 100
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    assert metrics.psnr(a, b, peak=1.0) == pytest.approx(-20.0)


def test_identical_images_are_infinite_psnr_unit_ssim_zero_mad():
    a = textured()
    assert metrics.psnr(a, a.copy()) == math.inf
    assert metrics.ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-6)
    assert metrics.mean_abs_diff(a, a.copy()) == 0.0


def test_ssim_matches_the_reference_formula_and_orders_degradation():
    a = textured()
    slightly, badly = noisy(a, 4), noisy(a, 40)
    assert metrics.ssim(a, slightly) == pytest.approx(reference_ssim(a, slightly), abs=1e-4)
    assert metrics.ssim(a, badly) == pytest.approx(reference_ssim(a, badly), abs=1e-4)
    assert metrics.ssim(a, badly) < metrics.ssim(a, slightly) < 1.0


def test_ssim_handles_different_sizes_in_turn_and_tiny_images():
    for shape in ((64, 80, 3), (96, 96, 3)):  # the scratch buffers follow the image size
        a = textured(shape=shape)
        assert metrics.ssim(a, noisy(a, 10)) == pytest.approx(reference_ssim(a, noisy(a, 10)), abs=1e-4)
    tiny = textured(shape=(6, 6, 3))
    assert metrics.ssim(tiny, tiny) == pytest.approx(1.0, abs=1e-6)


def test_mean_abs_diff_and_diff_image_are_on_the_0_255_scale():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0] = [10, 20, 200]
    assert metrics.mean_abs_diff(a, b) == pytest.approx(230 / a.size)
    assert metrics.mean_abs_diff(b, a) == pytest.approx(230 / a.size)
    diff = metrics.diff_image(a, b, gain=4.0)
    assert diff.dtype == np.uint8 and diff.shape == (4, 4, 3)
    assert diff[0, 0].tolist() == [40, 80, 255]  # amplified, saturated, never wrapped
    assert diff[1:].max() == 0


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim, metrics.mean_abs_diff, metrics.diff_image])
def test_image_metrics_refuse_mismatched_shapes(fn):
    with pytest.raises(ValueError, match=r"\(4, 4, 3\) vs \(4, 5, 3\)"):
        fn(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_joint_abs_error_and_rms():
    err = metrics.joint_abs_error(np.array([1.0, -2.0]), np.array([0.5, -1.0]))
    np.testing.assert_allclose(err, [0.5, 1.0])
    assert metrics.rms([3.0, 4.0]) == pytest.approx(math.sqrt(12.5))
    assert math.isnan(metrics.rms([]))
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3,\)"):
        metrics.joint_abs_error(np.zeros(2), np.zeros(3))


def make_step(**changes) -> StepRecord:
    fields = dict(
        t=3,
        timestamp=0.06,
        recorded_state=np.zeros(6),
        replayed_state=np.array([0.0, 0.2, 0.0, -0.1, 0.0, 0.05]),
        action=np.zeros(6),
        replayed_objects={"cube": np.array([0.0, 0.5, 0.05])},
        recorded_objects={"cube": np.array([0.003, 0.504, 0.05])},
        reward=2.0,
        success=False,
    )
    fields.update(changes)
    return StepRecord(**fields)


def test_step_metrics_columns_and_values():
    row = metrics.step_metrics(make_step(), state_names=NAMES, groups=GROUPS, cameras=[])
    assert row["state_err/l1"] == pytest.approx(0.2)
    assert row["group/left_arm"] == pytest.approx(0.2)
    assert row["group/right_arm"] == pytest.approx(0.1)
    assert row["group/right_gripper"] == pytest.approx(0.05)
    assert row["group/left_gripper"] == 0.0
    assert row["state_rms"] == pytest.approx(math.sqrt((0.04 + 0.01 + 0.0025) / 6))
    assert row["object_err/cube"] == pytest.approx(0.005)  # 3-4-5 triangle, metres
    assert row["reward"] == 2.0 and row["success"] == 0.0 and row["unstable"] == 0.0
    assert "recorded_reward" not in row and "recorded_success" not in row
    assert not any(k.startswith("image/") for k in row)
    assert all(isinstance(v, float) and not math.isnan(v) for v in row.values())


def test_step_metrics_mark_objects_a_meter_did_not_see():
    step = make_step(recorded_objects={"cube": np.array([0.0, 0.5, 0.05])}, object_gaps={"cube": False, "peg": True})
    row = metrics.step_metrics(step, state_names=NAMES, groups=GROUPS, cameras=[])
    assert row["object_gap/cube"] == 0.0 and row["object_gap/peg"] == 1.0
    assert "object_err/peg" not in row
    assert not any(k.startswith("object_gap/") for k in metrics.step_metrics(make_step(), state_names=NAMES,
                                                                               groups=GROUPS, cameras=[]))


def test_step_metrics_planar_angles_wrap_and_recorded_flags():
    step = make_step(
        recorded_object_angles={"cube": math.radians(179.0)},
        replayed_object_angles={"cube": math.radians(-179.0)},
        recorded_reward=0.5,
        recorded_success=True,
        unstable="NaN in qpos",
        success=True,
    )
    row = metrics.step_metrics(step, state_names=NAMES, groups=GROUPS, cameras=[])
    assert row["object_angle_err_deg/cube"] == pytest.approx(2.0)
    assert row["recorded_reward"] == 0.5 and row["recorded_success"] == 1.0
    assert row["unstable"] == 1.0 and row["success"] == 1.0


def test_step_metrics_omits_objects_and_images_not_measured():
    a = textured(shape=(32, 32, 3))
    step = make_step(
        recorded_objects=None,
        recorded_frames={"cam.top": a},
        replayed_frames={"cam.top": noisy(a, 20)},
    )
    row = metrics.step_metrics(step, state_names=NAMES, groups=GROUPS, cameras=["cam.top", "cam.wrist"])
    assert not any(k.startswith("object_err/") for k in row)
    assert set(k for k in row if k.startswith("image/")) == {
        "image/cam.top/psnr", "image/cam.top/ssim", "image/cam.top/mad"}
    assert 20 < row["image/cam.top/psnr"] < 40


def test_step_metrics_rejects_names_or_groups_that_do_not_fit_the_state():
    with pytest.raises(ValueError, match="5 state names for a state of width 6"):
        metrics.step_metrics(make_step(), state_names=NAMES[:5], groups=GROUPS, cameras=[])
    with pytest.raises(ValueError, match="'wide'"):
        metrics.step_metrics(make_step(), state_names=NAMES, groups={"wide": (4, 9)}, cameras=[])


def test_state_columns_are_bit_for_bit_the_reductions_they_replace():
    """StateColumns computes each value once per replay's names and groups; the numbers are metrics.rms and
    ndarray.max of the error vector exactly (NaN propagating), as step_metrics wrote them before."""
    rng = np.random.default_rng(7)
    columns = metrics.StateColumns(NAMES, GROUPS)
    for trial in range(200):
        recorded, replayed = rng.normal(size=6) * 10.0 ** rng.integers(-9, 2), rng.normal(size=6)
        if trial % 50 == 0:
            replayed[trial % 6] = np.nan
        row = columns(recorded, replayed)
        err = np.abs(recorded - replayed)
        expected = {f"state_err/{n}": float(e) for n, e in zip(NAMES, err, strict=True)}
        expected["state_rms"] = metrics.rms(err)
        expected.update({f"group/{g}": float(err[a:b].max()) for g, (a, b) in GROUPS.items()})
        assert row.keys() == expected.keys()
        for key, value in expected.items():
            assert np.array_equal(row[key], value, equal_nan=True) and type(row[key]) is float, key


def separate_passes_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM as metrics.ssim computes it, one numpy pass per float32 operation: a guard for faster rewrites."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def f(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my, sxx, syy, sxy = f(x), f(y), f(x * x), f(y * y), f(x * y)
    c1, c2 = np.float32((0.01 * 255) ** 2), np.float32((0.03 * 255) ** 2)
    p = mx * my
    num = (p * np.float32(2) + c1) * ((sxy - p) * np.float32(2) + c2)
    s = mx * mx + my * my
    den = (s + c1) * ((sxx + syy - s) + c2)
    return float(cv2.mean((num / den)[5:-5, 5:-5])[0])


def test_ssim_is_bit_for_bit_the_separate_float32_passes_and_ignores_memory_layout():
    for seed, amplitude in ((0, 3), (1, 40), (2, 120)):
        a = textured(seed, shape=(72, 90, 3))
        b = noisy(a, amplitude, seed + 5)
        value = metrics.ssim(a, b)
        assert value == separate_passes_ssim(a, b)
        flipped = np.ascontiguousarray(b[::-1])[::-1]  # how renders arrive
        assert metrics.ssim(a, flipped) == value


def test_step_metrics_of_flipped_renders_are_those_of_their_contiguous_copies():
    """Renders arrive as flipped views; each step's row holds its own frames' values, whatever the layout."""
    compute = metrics.StepMetrics(state_names=NAMES, groups=GROUPS, cameras=["top", "wrist"])
    rows = []
    for seed in range(3):
        frames = {c: textured(seed + 10 * i) for i, c in enumerate(["top", "wrist"])}
        renders = {c: np.ascontiguousarray(noisy(f, 5 + 20 * seed, seed)[::-1])[::-1] for c, f in frames.items()}
        step = StepRecord(t=seed, timestamp=seed / 50, recorded_state=np.zeros(6), replayed_state=np.zeros(6),
                          action=None, replayed_objects={}, recorded_frames=frames, replayed_frames=renders)
        rows.append(compute(step))
        for c in frames:
            contiguous = np.ascontiguousarray(renders[c])
            assert rows[-1][f"image/{c}/ssim"] == metrics.ssim(frames[c], contiguous)
            assert rows[-1][f"image/{c}/psnr"] == metrics.psnr(frames[c], contiguous)
            assert rows[-1][f"image/{c}/mad"] == metrics.mean_abs_diff(frames[c], contiguous)
    assert len({row["image/top/ssim"] for row in rows}) == 3
