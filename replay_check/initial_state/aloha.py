"""Recover ALOHA object poses from camera frame 0, and measure object positions in any frame.

The public ALOHA sim datasets store no object pose, but frame 0 is rendered right after reset with
the objects at z=0.05, identity orientation. So each object is found by its colour, its blob centroid
(corrected for the side faces the camera sees) is back-projected through the pinhole camera onto the
plane of its top face (coarse, ~1-2 mm), and (x, y) is then refined by rendering the scene on small
stencils of candidate poses and fitting a quadratic to the blurred squared difference with frame 0 in
a window around each object (render-and-compare; today's renders match the recorded frames at 43-45 dB,
so the fit lands within ~0.3 mm on the samples). The window residual at the truth is ~2.5/255: AV1 and
4:2:0 chroma soften the coloured edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from replay_check.errors import EstimationError
from replay_check.initial_state import fit
from replay_check.sims.base import InitialState, ObjectShape, ObjectUncertainty, Pose, SimAdapter
from replay_check.sims.camera import PinholeCamera

SPAWN_Z = 0.05  # object body height in frame 0 (they fall onto the table afterwards)
COLOR_CHANNELS = {"red": 0, "green": 1, "blue": 2}
MIN_CHROMA = 40  # dominant channel minus the larger other one (0-255); the grey arms and table sit near 0
MIN_VISIBLE_FRACTION = 0.2  # of the top face's expected pixel area, below which an object counts as not seen
MIN_PIXELS = 8
WINDOW_PAD_PX = 12
BLUR_SIGMA_PX = 1.0
# Up to three 3x3 stencils (9 renders each, one more for the residual); the first is wide enough for
# a ~5 mm coarse error, and the last is skipped when the previous fit moved every object by < STOP_STEP_M.
STENCIL_SPACINGS_M = (0.002, 0.001, 0.001)
STOP_STEP_M = 0.0003
MAX_JUMP_SPACINGS = 2.0  # trust region of one quadratic fit, in stencil spacings
Window = tuple[slice, slice]
_STENCIL = np.array([[dx, dy] for dx in (-1.0, 0.0, 1.0) for dy in (-1.0, 0.0, 1.0)])


# -- object geometry from the model ----------------------------------------------------------------
@dataclass(frozen=True)
class ObjectGeometry:
    """What the estimator needs to know about one free-jointed object, in its body frame."""

    name: str
    color: str
    corners: np.ndarray  # (N, 3) box corners of every geom
    top_offset: float  # body origin -> highest point
    bottom_offset: float  # body origin -> lowest point (negative)
    top_area: float  # footprint area of the geoms of `color` (m^2)


def _box_corners(pos: np.ndarray, mat: np.ndarray, half: np.ndarray) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return pos + (signs * half) @ mat.T


def _rgba_color_name(rgba: np.ndarray) -> str:
    return ("red", "green", "blue")[int(np.argmax(rgba[:3]))]


def _geometry(shape: ObjectShape, colors: dict[str, str] | None) -> ObjectGeometry:
    boxes = list(zip(shape.centers, shape.rotations, shape.half_sizes, shape.rgba, strict=True))
    corners = np.concatenate([_box_corners(p, m, h) for p, m, h, _ in boxes])
    areas: dict[str, float] = {}
    for _, mat, half, rgba in boxes:
        extent = np.abs(mat) @ half
        areas[_rgba_color_name(rgba)] = areas.get(_rgba_color_name(rgba), 0.0) + 4 * extent[0] * extent[1]
    color = (colors or {}).get(shape.name) or max(areas, key=areas.get)
    if color not in COLOR_CHANNELS:
        known = ", ".join(COLOR_CHANNELS)
        raise EstimationError(f"object {shape.name!r} has colour {color!r}; expected one of {known}")
    return ObjectGeometry(
        name=shape.name,
        color=color,
        corners=corners,
        top_offset=float(corners[:, 2].max()),
        bottom_offset=float(corners[:, 2].min()),
        top_area=areas.get(color, float(np.ptp(corners[:, 0]) * np.ptp(corners[:, 1]))),
    )


def object_geometry(adapter: SimAdapter, colors: dict[str, str] | None = None) -> list[ObjectGeometry]:
    """Geometry of each adapter object from the adapter's declared shapes; colour from `colors` or the model."""
    return [_geometry(shape, colors) for shape in adapter.geometry().objects]


def table_top_z(adapter: SimAdapter) -> float:
    """Height of the table surface, as the adapter declares it (0 when the model has no table)."""
    return adapter.geometry().support_z


# -- segmentation ---------------------------------------------------------------------------------
def color_mask(frame: np.ndarray, color: str) -> np.ndarray:
    """Pixels whose `color` channel exceeds both others by MIN_CHROMA (robust to shading and AV1 blur)."""
    channel = COLOR_CHANNELS[color]
    first, second = (c for c in range(3) if c != channel)
    others = np.maximum(frame[..., first], frame[..., second]).astype(np.int16)
    return (frame[..., channel].astype(np.int16) - others) > MIN_CHROMA


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected blob (drops stray pixels and a second object of the same colour)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 2:  # background plus at most one blob
        return mask
    return labels == (1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])))


def expected_pixels(camera: PinholeCamera, geometry: ObjectGeometry, top_z: float) -> float:
    """Pixel area of the object's top face when seen straight down from the camera's height."""
    depth = max(float(camera.center[2] - top_z), 1e-6)
    return geometry.top_area * (camera.K[0, 0] / depth) ** 2


def pixel_centroid(frame: np.ndarray, color: str, min_pixels: float) -> np.ndarray | None:
    """(u, v) centroid of the largest blob of `color`, None when it has fewer than `min_pixels` pixels."""
    blob = largest_component(color_mask(frame, color))
    count = int(blob.sum())
    if count < max(min_pixels, MIN_PIXELS):
        return None
    rows, cols = np.nonzero(blob)
    return np.array([cols.mean(), rows.mean()])


def _polygon_centroid(points: np.ndarray) -> np.ndarray:
    """Area centroid of the convex hull of 2-D points (shoelace formula)."""
    ring = points[cv2.convexHull(points.astype(np.float32), returnPoints=False).ravel()]  # ~100x qhull's speed
    nxt = np.roll(ring, -1, axis=0)
    cross = ring[:, 0] * nxt[:, 1] - nxt[:, 0] * ring[:, 1]
    return ((ring + nxt) * cross[:, None]).sum(axis=0) / (3.0 * cross.sum())


def locate(camera: PinholeCamera, geom: ObjectGeometry, centroid: np.ndarray, body_z: float) -> np.ndarray:
    """(x, y) of a body at height `body_z` whose colour blob has pixel centroid `centroid`.

    The blob is the object's silhouette, not just its top face: away from the image centre the side
    faces show too and pull the centroid outwards. Predict that pull from the model's box corners at
    the current guess and remove it (two fixed-point passes are plenty).
    """
    top_z = body_z + geom.top_offset
    xy = camera.backproject_to_plane(centroid[None], top_z)[0, :2]
    for _ in range(2):
        body = np.array([xy[0], xy[1], body_z])
        silhouette = _polygon_centroid(camera.project(geom.corners + body))
        top_center = camera.project(np.array([[xy[0], xy[1], top_z]]))[0]
        xy = camera.backproject_to_plane((centroid - (silhouette - top_center))[None], top_z)[0, :2]
    return xy


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise EstimationError(f"frame has shape {frame.shape}, dtype {frame.dtype}; expected (H, W, 3) uint8")
    return frame


# -- render-and-compare ---------------------------------------------------------------------------
def _window(camera: PinholeCamera, geometry: ObjectGeometry, xy: np.ndarray) -> Window:
    """Image rows/columns covering the object at (x, y, SPAWN_Z), padded for the search and shadows."""
    uv = camera.project(geometry.corners + np.array([xy[0], xy[1], SPAWN_Z]))
    lo = np.floor(np.nanmin(uv, axis=0)).astype(int) - WINDOW_PAD_PX
    hi = np.ceil(np.nanmax(uv, axis=0)).astype(int) + WINDOW_PAD_PX + 1
    lo = np.clip(lo, 0, [camera.width, camera.height])
    hi = np.clip(hi, 0, [camera.width, camera.height])
    return slice(lo[1], hi[1]), slice(lo[0], hi[0])


def _blurred(image: np.ndarray) -> np.ndarray:
    """Blur away what AV1 and 4:2:0 chroma do to edges, so renders and decoded frames compare fairly."""
    return ndimage.gaussian_filter(image.astype(np.float32), sigma=(BLUR_SIGMA_PX, BLUR_SIGMA_PX, 0))


class _Scene:
    """Renders the adapter with the arms fixed and candidate object (x, y), scoring each object's window."""

    def __init__(self, adapter: SimAdapter, robot: np.ndarray, camera: str, frame: np.ndarray):
        self.adapter, self.robot, self.camera = adapter, robot, camera
        self.frame = frame
        self.renders = 0
        self._blurred_frame: dict[Window, np.ndarray] = {}

    def restore(self, xy: dict[str, np.ndarray]) -> None:
        objects = {name: Pose(np.array([p[0], p[1], SPAWN_Z])) for name, p in xy.items()}
        self.adapter.restore(InitialState(robot=self.robot, objects=objects, method="estimated"))

    def render(self, xy: dict[str, np.ndarray]) -> np.ndarray:
        return self.render_many([xy])[0]

    def render_many(self, candidates: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """One render per candidate, in order; at once where the adapter renders several in parallel
        (`render_hypotheses`, e.g. spread over render workers), one by one otherwise."""
        poses = [{name: Pose(np.array([p[0], p[1], SPAWN_Z])) for name, p in xy.items()} for xy in candidates]
        size = self.frame.shape[:2]
        self.renders += len(poses)
        many = getattr(self.adapter, "render_hypotheses", None)
        if many is None:
            images = [self.adapter.render_hypothesis(self.camera, self.robot, p, size=size) for p in poses]
        else:
            images = many(self.camera, self.robot, poses, size)
        self.last_image = images[-1]
        return images

    def costs(
        self, xy: dict[str, np.ndarray], windows: dict[str, Window], keep: dict[str, list] | None = None
    ) -> dict[str, float]:
        """Mean squared difference of the blurred render and frame in each object's window.

        With `keep`, each object's blurred render window is appended to keep[name] (for the Jacobian).
        """
        return self.score(self.render(xy), windows, keep)

    def score(
        self, image: np.ndarray, windows: dict[str, Window], keep: dict[str, list] | None = None
    ) -> dict[str, float]:
        """`costs` of an image already rendered."""
        costs = {}
        for name, window in windows.items():
            rendered = _blurred(image[window])
            costs[name] = float(np.mean((rendered - self.blurred_frame(window)) ** 2))
            if keep is not None:
                keep.setdefault(name, []).append(rendered)
        return costs

    def blurred_frame(self, window: Window) -> np.ndarray:
        key = (window[0].start, window[0].stop, window[1].start, window[1].stop)
        if key not in self._blurred_frame:
            self._blurred_frame[key] = _blurred(self.frame[window])
        return self._blurred_frame[key]

    def abs_errors(self, image: np.ndarray, windows: dict[str, Window]) -> dict[str, float]:
        """Mean absolute pixel difference (0-255) per object window of a render, unblurred: the residual."""
        diff = np.abs(image.astype(np.float32) - self.frame.astype(np.float32))
        return {name: float(diff[window].mean()) for name, window in windows.items()}


def quadratic_minimum(offsets: np.ndarray, costs: np.ndarray, spacing: float) -> np.ndarray | None:
    """Minimum of the least-squares quadratic through (offset, cost) samples, None if it has no minimum.

    Rasterisation makes the cost a staircase at the sub-pixel scale; a quadratic over a stencil a few
    pixels wide averages the steps out and lands near the true optimum.
    """
    x, y = offsets[:, 0] / spacing, offsets[:, 1] / spacing
    design = np.column_stack([x * x, y * y, x * y, x, y, np.ones_like(x)])
    (a, b, c, d, e, _), *_ = np.linalg.lstsq(design, costs, rcond=None)
    hessian = np.array([[2 * a, c], [c, 2 * b]])
    if np.linalg.eigvalsh(hessian).min() <= 0:
        return None
    return -np.linalg.solve(hessian, [d, e]) * spacing


@dataclass
class _LastRound:
    """The final stencil round of the refinement, kept for the uncertainty: offsets, costs and renders."""

    spacing: float
    costs: dict[str, np.ndarray]
    windows: dict[str, list[np.ndarray]]


def refine_positions(
    scene: _Scene, start: dict[str, np.ndarray], windows: dict[str, Window]
) -> tuple[dict[str, np.ndarray], dict[str, int], _LastRound]:
    """Stencil-and-fit rounds on every object's (x, y) at once: one render scores one candidate per object."""
    current = {name: np.asarray(p, dtype=np.float64).copy() for name, p in start.items()}
    fitted = dict.fromkeys(current, 0)
    largest_step = np.inf
    last = _LastRound(0.0, {}, {})
    for round_index, spacing in enumerate(STENCIL_SPACINGS_M):
        if round_index >= 2 and largest_step < STOP_STEP_M:
            break
        largest_step = 0.0
        offsets = _STENCIL * spacing
        samples = {name: [] for name in current}
        kept: dict[str, list] = {}
        for image in scene.render_many([{n: p + offset for n, p in current.items()} for offset in offsets]):
            for name, cost in scene.score(image, windows, kept).items():
                samples[name].append(cost)
        last = _LastRound(spacing, {n: np.asarray(c) for n, c in samples.items()}, kept)
        for name, costs in samples.items():
            costs = np.asarray(costs)
            step = quadratic_minimum(offsets, costs, spacing)
            if step is None:
                step = offsets[int(np.argmin(costs))]
            else:
                fitted[name] += 1
                step = step * min(1.0, MAX_JUMP_SPACINGS * spacing / max(float(np.linalg.norm(step)), 1e-12))
            current[name] = current[name] + step
            largest_step = max(largest_step, float(np.linalg.norm(step)))
    return current, fitted, last


UNCERTAINTY_TILE_PX = 8  # blur (1 px) plus AV1 blocks: residuals correlate over several pixels


def position_uncertainty(last: _LastRound, residual: np.ndarray, name: str) -> ObjectUncertainty | None:
    """1-sigma of an object's (x, y) from the last stencil round (see fit.py); z and yaw are not fitted.

    `residual` is the blurred render minus the blurred frame in the object's window at the estimate.
    """
    index = {tuple(o): i for i, o in enumerate(_STENCIL)}
    renders = last.windows[name]
    plus = [renders[index[(1.0, 0.0)]], renders[index[(0.0, 1.0)]]]
    minus = [renders[index[(-1.0, 0.0)]], renders[index[(0.0, -1.0)]]]
    steps = np.array([last.spacing, last.spacing])
    image = fit.sandwich_covariance(fit.central_jacobian(plus, minus, steps), residual, UNCERTAINTY_TILE_PX)
    hessian_unit, _, misfit = fit.fit_quadratic(_STENCIL, last.costs[name])
    stairs = fit.staircase_covariance(hessian_unit / last.spacing**2, misfit)
    if image is None or stairs is None:
        return None
    sigma = np.sqrt(np.diag(image + stairs))
    return ObjectUncertainty(position=np.array([sigma[0], sigma[1], 0.0]), angle=0.0)


# -- public API -----------------------------------------------------------------------------------
def estimate_aloha_objects(
    frame0: np.ndarray,
    robot_state0: np.ndarray,
    adapter: SimAdapter,
    camera: str = "top",
    colors: dict[str, str] | None = None,
) -> InitialState:
    """Object poses at frame 0 (z=0.05, identity orientation) with the arms from `robot_state0`."""
    frame0 = _check_frame(frame0)
    robot = np.asarray(robot_state0, dtype=np.float64)
    geometries = object_geometry(adapter, colors)
    height, width = frame0.shape[:2]
    scene = _Scene(adapter, robot, camera, frame0)
    scene.restore({g.name: np.zeros(2) for g in geometries})  # arms in place, cameras forwarded
    cam = adapter.camera_model(camera, height, width)

    coarse, centroids = {}, {}
    for g in geometries:
        top_z = SPAWN_Z + g.top_offset
        centroid = pixel_centroid(frame0, g.color, MIN_VISIBLE_FRACTION * expected_pixels(cam, g, top_z))
        if centroid is None:
            raise EstimationError(f"object {g.name!r} ({g.color}) not found in frame 0 of camera {camera!r}")
        centroids[g.name] = centroid
        coarse[g.name] = locate(cam, g, centroid, SPAWN_Z)

    windows = {g.name: _window(cam, g, coarse[g.name]) for g in geometries}
    refined, fits, last = refine_positions(scene, coarse, windows)
    at_estimate: dict[str, list] = {}
    scene.costs(refined, windows, at_estimate)  # the render at the estimate, for residuals
    errors = scene.abs_errors(scene.last_image, windows)
    uncertainty = {}
    for name, window in windows.items():
        found = position_uncertainty(last, at_estimate[name][0] - scene.blurred_frame(window), name)
        if found is not None:
            uncertainty[name] = found
    objects = {name: Pose(np.array([xy[0], xy[1], SPAWN_Z])) for name, xy in refined.items()}

    sizes = {name: (w[0].stop - w[0].start) * (w[1].stop - w[1].start) for name, w in windows.items()}
    residual = float(sum(errors[n] * sizes[n] for n in errors) / max(sum(sizes.values()), 1))
    details = {
        name: {
            "pixel_centroid": [float(v) for v in centroids[name]],
            "coarse_position": [float(coarse[name][0]), float(coarse[name][1]), SPAWN_Z],
            "refined_position": [float(v) for v in objects[name].position],
            "iterations": fits[name],
            "window_residual": errors[name],
            "renders": scene.renders,
        }
        for name in refined
    }
    return InitialState(
        robot=robot, objects=objects, method="estimated", residual=residual, details=details, uncertainty=uncertainty
    )


METER_STRIDE = 4  # the per-frame meter finds each object's blob on every 4th pixel, then measures at full size
METER_MARGIN = 1  # blob dilation (in strided pixels) for the full-size window: covers the codec's colour blur
CHROMA_FLOOR = 5.0  # chroma (0-255) below which a pixel weighs nothing: the grey table's own tint and noise


def chroma(frame: np.ndarray, color: str) -> np.ndarray:
    """`color` channel minus the larger other channel, as float32 (negative for other colours)."""
    channel = COLOR_CHANNELS[color]
    first, second = (c for c in range(3) if c != channel)
    return frame[..., channel].astype(np.float32) - np.maximum(frame[..., first], frame[..., second])


def chroma_centroid(frame: np.ndarray, blob: np.ndarray, stride: int, color: str) -> np.ndarray:
    """(u, v) centroid of the object's chroma, linear in the image, around a blob found every `stride` pixels.

    A centroid of weights linear in the pixel values does not move when the image is blurred by a
    symmetric kernel, which is what AV1 and 4:2:0 chroma mostly do to a coloured object; a thresholded
    mask's centroid moves with every edge the codec softens (1-3 mm here). Only the blob's dilated
    neighbourhood counts, so other objects of the same colour and the window's border stay out.
    """
    rows, cols = np.nonzero(blob)
    r0, r1 = max(rows.min() - METER_MARGIN, 0), min(rows.max() + 1 + METER_MARGIN, blob.shape[0])
    c0, c1 = max(cols.min() - METER_MARGIN, 0), min(cols.max() + 1 + METER_MARGIN, blob.shape[1])
    return _window_centroid(frame, blob[r0:r1, c0:c1], int(r0), int(c0), stride, color)


def _window_centroid(frame: np.ndarray, window_blob: np.ndarray, r0: int, c0: int, stride: int,
                     color: str) -> np.ndarray:
    """chroma_centroid given the blob over its bounding box grown by METER_MARGIN, whose corner is (r0, c0)."""
    r1, c1 = r0 + window_blob.shape[0], c0 + window_blob.shape[1]
    size = 2 * METER_MARGIN + 1
    near = cv2.dilate(window_blob.view(np.uint8), np.ones((size, size), np.uint8))
    near = np.repeat(np.repeat(near, stride, axis=0), stride, axis=1)
    top, left = r0 * stride, c0 * stride
    window = frame[top : top + near.shape[0], left : left + near.shape[1]]
    near = near[: window.shape[0], : window.shape[1]]
    weight = np.maximum(chroma(window, color) - CHROMA_FLOOR, 0.0) * near
    total = float(weight.sum())
    if total <= 0.0:
        return np.array([(c0 + c1) * stride / 2.0, (r0 + r1) * stride / 2.0])
    u = float(weight.sum(axis=0) @ np.arange(left, left + window.shape[1])) / total
    v = float(weight.sum(axis=1) @ np.arange(top, top + window.shape[0])) / total
    return np.array([u, v])


def largest_blob_window(mask: np.ndarray) -> tuple[np.ndarray, int, int, int] | None:
    """The largest 8-connected blob of `mask` as (its mask over its bounding box grown by METER_MARGIN,
    that window's top row, its left column, the blob's pixel count); None when `mask` is empty.

    The same blob as largest_component, with the count and bounds connectedComponentsWithStats already
    has: no further pass over the image to count or find its pixels (the per-frame meter's path).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    left, top = int(stats[k, cv2.CC_STAT_LEFT]), int(stats[k, cv2.CC_STAT_TOP])
    width, height = int(stats[k, cv2.CC_STAT_WIDTH]), int(stats[k, cv2.CC_STAT_HEIGHT])
    r0, r1 = max(top - METER_MARGIN, 0), min(top + height + METER_MARGIN, mask.shape[0])
    c0, c1 = max(left - METER_MARGIN, 0), min(left + width + METER_MARGIN, mask.shape[1])
    window = mask[r0:r1, c0:c1] if count == 2 else labels[r0:r1, c0:c1] == k
    return window, r0, c0, int(stats[k, cv2.CC_STAT_AREA])


class ObjectMeter:
    """Per-frame object positions: colour blob, its linear chroma centroid, back-projection.

    Objects are assumed to rest on the table (their top face at table height + object height), which
    holds for most of an episode; a lifted object reads displaced radially from the image centre by
    about lift x offset / camera height. Apply the meter to both recorded and re-rendered frames to
    cancel that bias when comparing them; on a faithful replay the two readings agree to ~0.1-0.5 mm
    while objects rest (scripts/check_measurements.py).
    """

    def __init__(self, adapter: SimAdapter, camera: str, height: int, width: int, colors: dict[str, str]):
        self.camera: PinholeCamera = adapter.camera_model(camera, height, width)
        scene = adapter.geometry()
        self.geometries = [_geometry(shape, colors or None) for shape in scene.objects]
        table = scene.support_z
        self._rest_z = {g.name: table - g.bottom_offset for g in self.geometries}
        self._min_pixels = {
            g.name: MIN_VISIBLE_FRACTION * expected_pixels(self.camera, g, z + g.top_offset)
            for g, z in zip(self.geometries, self._rest_z.values(), strict=True)
        }

    def measure(self, frame: np.ndarray) -> dict[str, np.ndarray | None]:
        """name -> world position (3,) of the body origin, None when too little of the object is seen."""
        frame = _check_frame(frame)
        if frame.shape[:2] != (self.camera.height, self.camera.width):
            expected = f"{self.camera.height}x{self.camera.width}"
            raise EstimationError(f"frame is {frame.shape[0]}x{frame.shape[1]}; expected {expected}")
        found: dict[str, np.ndarray | None] = {}
        sub = frame[::METER_STRIDE, ::METER_STRIDE]
        for g in self.geometries:
            blob = largest_blob_window(color_mask(sub, g.color))
            if blob is None or blob[3] * METER_STRIDE**2 < max(self._min_pixels[g.name], MIN_PIXELS):
                found[g.name] = None
                continue
            centroid = _window_centroid(frame, blob[0], blob[1], blob[2], METER_STRIDE, g.color)
            rest_z = self._rest_z[g.name]
            xy = locate(self.camera, g, centroid, rest_z)
            found[g.name] = np.array([xy[0], xy[1], rest_z])
        return found
