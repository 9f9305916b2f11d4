"""Per-step comparison metrics: pure functions over arrays, cheap enough to run on every step.

Image metrics take HxWx3 uint8 frames (the recorded decode and the simulator's render) and use
OpenCV kernels, so PSNR + SSIM + MAD + a diff image on 480x640 cost a few milliseconds.

`step_metrics` turns one StepRecord into a flat row of scalar columns with stable names:

    state_err/<joint>              |recorded - replayed| (rad for arm joints, normalized gripper units)
    state_rms                      RMS of the state error over all joints
    group/<group>                  max |error| over a profile state group (left_arm, right_gripper, agent ...)
    object_err/<object>            Euclidean distance recorded vs replayed position, simulator units
                                   (m for ALOHA, px for PushT); only when the recorded position is known
    object_angle_err_deg/<object>  wrapped planar angle difference (deg), when both angles are known
    object_gap/<object>            1 when an image meter did not see the object (recorded or replayed), else 0;
                                   only on steps where objects were measured in images
    image/<camera>/psnr|ssim|mad   on steps whose frames were compared (PSNR +inf for identical frames)
    reward, success, unstable      the replay's reward, success (0/1) and blow-up flag (0/1)
    recorded_reward, recorded_success   when the dataset has them

Keys for things not measured on a step are omitted, never NaN: the engine fills gaps with NaN.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import cv2
import numpy as np

from replay_check.steps import StepRecord

# Wang et al. 2004: 11x11 gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, dynamic range 255.
_SSIM_WINDOW = (11, 11)
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
_SSIM_CROP = 5  # drop the half-window border, where the filter sees padding


def joint_abs_error(recorded: np.ndarray, replayed: np.ndarray) -> np.ndarray:
    """Elementwise |recorded - replayed| of two state vectors of the same layout."""
    recorded = np.asarray(recorded, dtype=np.float64)
    replayed = np.asarray(replayed, dtype=np.float64)
    if recorded.shape != replayed.shape:
        raise ValueError(
            f"recorded state has shape {recorded.shape}, replayed {replayed.shape}; expected equal shapes"
        )
    return np.abs(recorded - replayed)


def rms(x: np.ndarray | Sequence[float]) -> float:
    """Root mean square; NaN for an empty input."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean(np.square(x))))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}; expected equal")
    if a.size == 0:
        raise ValueError("images are empty; expected at least one pixel")


def _as_cv(a: np.ndarray) -> np.ndarray:
    """uint8 stays as is (fast paths); anything else becomes float32."""
    a = np.asarray(a)
    return a if a.dtype == np.uint8 else a.astype(np.float32)


def _squared_error_sum(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.norm(_as_cv(a), _as_cv(b), cv2.NORM_L2SQR))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; +inf when the images are identical."""
    _check_pair(a, b)
    mse = _squared_error_sum(a, b) / a.size
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference per channel value, on the images' own scale (0-255 for uint8)."""
    _check_pair(a, b)
    return float(cv2.norm(_as_cv(a), _as_cv(b), cv2.NORM_L1)) / a.size


def _luma_into(a: np.ndarray, out: np.ndarray) -> None:
    """BT.601 luma of `a` written into the float32 buffer `out` (grayscale input passes through)."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a if a.dtype == np.uint8 else a.astype(np.float32), cv2.COLOR_RGB2GRAY)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    elif a.ndim != 2:
        raise ValueError(f"image has shape {a.shape}; expected HxW, HxWx1 or HxWx3")
    np.copyto(out, a, casting="unsafe")


_scratch = threading.local()


def _workspace(shape: tuple[int, int]) -> np.ndarray:
    """Nine reusable float32 planes per image size and thread.

    Fresh 1 MB temporaries cost a page-faulting mmap each; reusing them makes SSIM ~3x faster.
    """
    cache = _scratch.__dict__.setdefault("planes", {})
    if shape not in cache:
        cache.clear()
        cache[shape] = np.empty((9, *shape), dtype=np.float32)
    return cache[shape]


def _blur(src: np.ndarray, dst: np.ndarray) -> None:
    cv2.GaussianBlur(src, _SSIM_WINDOW, _SSIM_SIGMA, dst=dst, borderType=cv2.BORDER_REFLECT)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) on luma, 0-255 range; 1.0 for identical images.

    Gaussian 11x11 window with sigma 1.5 and population statistics, as in the paper; the mean
    skips a 5-pixel border where the window would read padding (images up to 10 px keep it).
    """
    _check_pair(a, b)
    x, y, mu_x, mu_y, s_xx, s_yy, s_xy, t, u = _workspace(np.asarray(a).shape[:2])
    _luma_into(a, x)
    _luma_into(b, y)
    _blur(x, mu_x)
    _blur(y, mu_y)
    for left, right, dst in ((x, x, s_xx), (y, y, s_yy), (x, y, s_xy)):
        np.multiply(left, right, out=t)
        _blur(t, dst)
    # numerator (2 mu_x mu_y + C1) (2 cov_xy + C2), with cov_xy = E[xy] - mu_x mu_y
    np.multiply(mu_x, mu_y, out=t)
    s_xy -= t
    s_xy *= 2.0
    s_xy += _SSIM_C2
    t *= 2.0
    t += _SSIM_C1
    t *= s_xy
    # denominator (mu_x^2 + mu_y^2 + C1) (var_x + var_y + C2), with var = E[z^2] - mu_z^2
    np.multiply(mu_x, mu_x, out=u)
    np.multiply(mu_y, mu_y, out=x)
    u += x
    np.add(s_xx, s_yy, out=y)
    y -= u
    y += _SSIM_C2
    u += _SSIM_C1
    u *= y
    t /= u
    c = _SSIM_CROP
    if t.shape[0] > 2 * c and t.shape[1] > 2 * c:
        t = t[c:-c, c:-c]
    return float(cv2.mean(t)[0])


def diff_image(a: np.ndarray, b: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|a - b| amplified by `gain` and saturated, as uint8 HxWx3 for viewing small render differences."""
    _check_pair(a, b)
    diff = cv2.absdiff(_as_cv(a), _as_cv(b))
    out = cv2.convertScaleAbs(diff, alpha=gain)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    elif out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return out


def _wrapped_deg(a: float, b: float) -> float:
    """|a - b| in degrees, wrapped to [0, 180]."""
    d = (float(a) - float(b) + np.pi) % (2.0 * np.pi) - np.pi
    return float(abs(np.degrees(d)))


class StateColumns:
    """The state columns of one replay's steps, their names and group slices worked out once.

    Per step only the error vector is computed; the row holds the values `step_metrics` always wrote,
    bit for bit (tests/test_metrics.py checks), without rebuilding a dozen f-strings on every step.
    """

    def __init__(self, state_names: Sequence[str], groups: dict[str, tuple[int, int]]):
        self.keys = [f"state_err/{name}" for name in state_names]
        self.groups = [(f"group/{group}", group, int(start), int(stop)) for group, (start, stop) in groups.items()]

    def __call__(self, recorded: np.ndarray, replayed: np.ndarray) -> dict[str, float]:
        err = joint_abs_error(recorded, replayed).reshape(-1)
        if len(self.keys) != err.size:
            raise ValueError(f"{len(self.keys)} state names for a state of width {err.size}; expected one each")
        values = err.tolist()
        row = dict(zip(self.keys, values, strict=True))
        # rms(err) without its checks: sqrt(mean(err**2)), the same reductions
        total = float(np.add.reduce(np.square(err))) if err.size else float("nan")
        row["state_rms"] = math.sqrt(total / err.size) if err.size else total
        for key, group, start, stop in self.groups:
            if not 0 <= start < stop <= err.size:
                raise ValueError(f"state group {group!r} spans [{start}, {stop}); state width is {err.size}")
            # without a NaN (the sum of squares shows one) Python's max is numpy's; with one, numpy's propagates it
            row[key] = max(values[start:stop]) if total == total else float(np.max(err[start:stop]))
        return row


def _object_columns(step: StepRecord) -> dict[str, float]:
    row: dict[str, float] = {}
    recorded = step.recorded_objects or {}
    for name, replayed in step.replayed_objects.items():
        if name in recorded and recorded[name] is not None:
            delta = np.asarray(recorded[name], dtype=np.float64) - np.asarray(replayed, dtype=np.float64)
            row[f"object_err/{name}"] = float(np.linalg.norm(delta))
    for name, gap in (step.object_gaps or {}).items():
        row[f"object_gap/{name}"] = 1.0 if gap else 0.0
    rec_angles = step.recorded_object_angles or {}
    for name, angle in (step.replayed_object_angles or {}).items():
        if name in rec_angles and rec_angles[name] is not None:
            row[f"object_angle_err_deg/{name}"] = _wrapped_deg(rec_angles[name], angle)
    return row


def _image_columns(step: StepRecord, cameras: Sequence[str]) -> dict[str, float]:
    row: dict[str, float] = {}
    for camera in cameras:
        recorded = step.recorded_frames.get(camera)
        replayed = step.replayed_frames.get(camera)
        if recorded is None or replayed is None:
            continue
        # renders arrive as flipped views; OpenCV would copy them once per metric
        recorded, replayed = np.ascontiguousarray(recorded), np.ascontiguousarray(replayed)
        row[f"image/{camera}/psnr"] = psnr(recorded, replayed)
        row[f"image/{camera}/ssim"] = ssim(recorded, replayed)
        row[f"image/{camera}/mad"] = mean_abs_diff(recorded, replayed)
    return row


class StepMetrics:
    """`step_metrics` bound to one replay's state names, groups and cameras (what the engine calls per step)."""

    def __init__(self, *, state_names: Sequence[str], groups: dict[str, tuple[int, int]], cameras: Sequence[str]):
        self.state = StateColumns(state_names, groups)
        self.cameras = tuple(cameras)

    def __call__(self, step: StepRecord) -> dict[str, float]:
        row = self.state(step.recorded_state, step.replayed_state)
        if step.replayed_objects or step.object_gaps or step.replayed_object_angles:
            row.update(_object_columns(step))
        if self.cameras and step.recorded_frames:
            row.update(_image_columns(step, self.cameras))
        row["reward"] = float(step.reward)
        row["success"] = 1.0 if step.success else 0.0
        row["unstable"] = 1.0 if step.unstable else 0.0
        if step.recorded_reward is not None:
            row["recorded_reward"] = float(step.recorded_reward)
        if step.recorded_success is not None:
            row["recorded_success"] = 1.0 if step.recorded_success else 0.0
        return row


def step_metrics(
    step: StepRecord,
    *,
    state_names: Sequence[str],
    groups: dict[str, tuple[int, int]],
    cameras: Sequence[str],
) -> dict[str, float]:
    """One flat row of scalar metrics for one step (see the module docstring for column names)."""
    return StepMetrics(state_names=state_names, groups=groups, cameras=cameras)(step)
