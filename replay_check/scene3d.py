"""The simulator's 3-D scene in the Rerun recording: replayed bodies, a ghost of the recording, camera frusta.

Read from a MuJoCo model only (geometry and kinematics, never rendering: mixing mujoco.Renderer with
dm_control's renderer in one process corrupts frames). Entity layout:

    scene/world/<geom>                      static geometry (bodies welded to the world), logged once
    scene/replayed/<body>                   Transform3D per step (the simulator's body poses)
    scene/replayed/<body>/<geom>            that body's visual geoms, logged once (static), model colours
    scene/recorded/<body>[/<geom>]          the same for the ghost: forward kinematics of the recorded joint
                                            states (and recorded or measured object poses), translucent blue

Bodies welded together share one entity (the weld root), so one transform per moving rigid group and step.
Meshes are decimated by vertex clustering (`MESH_CELL_M`; the ghost: `GHOST_CELL_M`) so the geometry stays small
in a recording that already holds image streams; a translucent ghost and an overview need no fine detail.
Per-step poses are buffered and sent with send_columns at the end, like the scalar curves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
import rerun as rr

MESH_CELL_M = 0.008  # vertex-clustering cell for the replayed bodies' meshes (m)
GHOST_CELL_M = 0.012  # coarser for the translucent ghost: its outline is what a person reads
GHOST_RGBA = (90, 140, 220, 70)  # the recording's colour family (blue), translucent
PLANE_HALF_M = 1.0  # half size drawn for an infinite MuJoCo plane
GEOM_GROUPS_SHOWN = (0, 1, 2)  # MuJoCo's default visible geom groups
DEFAULT_RGBA = (0.5, 0.5, 0.5, 1.0)  # MuJoCo's geom rgba when none is given (a material's then applies)

# recorded robot state (dataset layout) and recorded object poses ({name: (position, wxyz)} or None) -> qpos
QposMap = Callable[[np.ndarray, "Mapping[str, tuple[np.ndarray, np.ndarray]] | None"], np.ndarray]


def part(name: str) -> str:
    return rr.escape_entity_path_part(str(name))


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def decimate(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: merge vertices within one `cell`-sized grid cell, drop collapsed triangles."""
    keys = np.floor(vertices / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    merged = np.zeros((counts.size, 3))
    np.add.at(merged, cluster, vertices)
    merged /= counts[:, None]
    tri = cluster[faces]
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri = tri[keep]
    first = np.unique(np.sort(tri, axis=1), axis=0, return_index=True)[1]  # one copy of each triangle
    return merged.astype(np.float32), tri[np.sort(first)].astype(np.uint32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (Rerun shades a mesh without normals flat and dark)."""
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    face_n = np.cross(b - a, c - a)
    normals = np.zeros((len(vertices), 3))
    for i in range(3):
        np.add.at(normals, faces[:, i], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(length > 0, length, 1.0)).astype(np.float32)


def geom_rgba(model: mujoco.MjModel, g: int) -> np.ndarray:
    """A geom's colour as MuJoCo draws it: its rgba, or its material's when the rgba was left at the default."""
    rgba = np.asarray(model.geom_rgba[g], dtype=np.float64)
    mat = int(model.geom_matid[g])
    if mat >= 0 and np.allclose(rgba, DEFAULT_RGBA):
        rgba = np.asarray(model.mat_rgba[mat], dtype=np.float64)
    return rgba


def geom_shape(model: mujoco.MjModel, g: int, rgba: Sequence[int], cell: float = MESH_CELL_M):
    """The Rerun archetype of geom `g` in its own frame (None for types Rerun has no shape for)."""
    kind = int(model.geom_type[g])
    size = np.asarray(model.geom_size[g], dtype=np.float64)
    solid = rr.components.FillMode.Solid
    types = mujoco.mjtGeom
    if kind == types.mjGEOM_MESH:
        k = int(model.geom_dataid[g])
        v0, nv = int(model.mesh_vertadr[k]), int(model.mesh_vertnum[k])
        f0, nf = int(model.mesh_faceadr[k]), int(model.mesh_facenum[k])
        vertices = np.asarray(model.mesh_vert[v0 : v0 + nv], dtype=np.float64)
        faces = np.asarray(model.mesh_face[f0 : f0 + nf], dtype=np.int64)
        if cell > 0:
            vertices, faces = decimate(vertices, faces, cell)
        return rr.Mesh3D(vertex_positions=vertices.astype(np.float32), triangle_indices=faces.astype(np.uint32),
                         vertex_normals=vertex_normals(vertices, faces), albedo_factor=rgba)
    if kind == types.mjGEOM_BOX:
        return rr.Boxes3D(half_sizes=[size], colors=[rgba], fill_mode=solid)
    if kind == types.mjGEOM_SPHERE:
        return rr.Ellipsoids3D(half_sizes=[[size[0]] * 3], colors=[rgba], fill_mode=solid)
    if kind == types.mjGEOM_ELLIPSOID:
        return rr.Ellipsoids3D(half_sizes=[size], colors=[rgba], fill_mode=solid)
    if kind == types.mjGEOM_CYLINDER:
        return rr.Cylinders3D(lengths=[2 * size[1]], radii=[size[0]], colors=[rgba], fill_mode=solid)
    if kind == types.mjGEOM_CAPSULE:  # Rerun's capsule starts at its origin and runs along +z
        return rr.Capsules3D(lengths=[2 * size[1]], radii=[size[0]], translations=[[0, 0, -size[1]]],
                             colors=[rgba], fill_mode=solid)
    if kind == types.mjGEOM_PLANE:
        half = [size[0] or PLANE_HALF_M, size[1] or PLANE_HALF_M, 0.0005]
        return rr.Boxes3D(half_sizes=[half], centers=[[0, 0, -half[2]]], colors=[rgba], fill_mode=solid)
    return None


def _to_u8(rgba: np.ndarray) -> tuple[int, int, int, int]:
    return tuple(int(round(255 * float(np.clip(c, 0, 1)))) for c in rgba)  # type: ignore[return-value]


@dataclass(frozen=True)
class PoseColumns:
    """Per-step world poses of a set of bodies: positions (T, N, 3) and wxyz quaternions (T, N, 4)."""

    names: tuple[str, ...]
    positions: np.ndarray
    quaternions: np.ndarray


class MujocoScene:
    """One MuJoCo model's visual geometry and kinematics, with its own MjData for the ghost's forward kinematics.

    `qpos_of` maps a recorded robot state (and recorded object poses, when known) to the model's qpos; it is
    the family's knowledge of the dataset layout. Nothing here renders.
    """

    def __init__(self, model: mujoco.MjModel, qpos_of: QposMap, *, mesh_cell: float = MESH_CELL_M,
                 ghost_cell: float = GHOST_CELL_M, object_bodies: Mapping[str, str] | None = None):
        self.model = model
        self.object_body_names = dict(object_bodies or {})  # task object name -> its body's name
        self.data = mujoco.MjData(model)
        self.qpos_of = qpos_of
        self.mesh_cell = mesh_cell
        self.ghost_cell = ghost_cell
        mujoco.mj_kinematics(model, self.data)
        self.body_names = tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or f"body_{b}"
                                for b in range(model.nbody))
        self.geoms: dict[int, list[int]] = {}  # weld root body -> its visible geoms
        for g in range(model.ngeom):
            if int(model.geom_group[g]) in GEOM_GROUPS_SHOWN and geom_rgba(model, g)[3] > 0:
                self.geoms.setdefault(int(model.body_weldid[model.geom_bodyid[g]]), []).append(g)
        self.static_root = 0  # the world body: geoms welded to it never move
        self.moving = tuple(b for b in sorted(self.geoms) if b != self.static_root)
        self.object_bodies = frozenset(b for b in self.moving if self._under_free_joint(b))

    def _under_free_joint(self, body: int) -> bool:
        root = int(self.model.body_rootid[body])
        adr, num = int(self.model.body_jntadr[root]), int(self.model.body_jntnum[root])
        return num > 0 and int(self.model.jnt_type[adr]) == mujoco.mjtJoint.mjJNT_FREE

    def entity(self, body: int) -> str:
        return part(self.body_names[body])

    def geom_entity(self, g: int) -> str:
        name = mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_GEOM, g)
        return part(name or f"geom_{g}")

    # ---- kinematics -----------------------------------------------------------------------------------------

    def forward(self, qpos: np.ndarray) -> None:
        """Forward kinematics (and camera poses) of `qpos` on this scene's own MjData."""
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def ghost(self, states: np.ndarray, objects: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]] | None],
              cameras: Sequence[str] = ()) -> tuple[PoseColumns, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Poses of the moving bodies for each recorded row, and of the named cameras (positions, xyzw)."""
        bodies = np.asarray(self.moving, dtype=np.int64)
        positions = np.empty((len(states), len(bodies), 3))
        quats = np.empty((len(states), len(bodies), 4))
        cam_ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, c) for c in cameras]
        cams = {c: (np.empty((len(states), 3)), np.empty((len(states), 4))) for c in cameras}
        for t, (state, poses) in enumerate(zip(states, objects, strict=True)):
            self.forward(self.qpos_of(state, poses))
            positions[t] = self.data.xpos[bodies]
            quats[t] = self.data.xquat[bodies]
            for name, cid in zip(cameras, cam_ids, strict=True):
                cams[name][0][t] = self.data.cam_xpos[cid]
                q = np.empty(4)
                mujoco.mju_mat2Quat(q, self.data.cam_xmat[cid])
                cams[name][1][t] = wxyz_to_xyzw(q)
        names = tuple(self.body_names[b] for b in bodies)
        return PoseColumns(names, positions, quats), cams

    def select(self, names: Sequence[str], positions: np.ndarray, quaternions: np.ndarray) -> PoseColumns:
        """The moving bodies' rows out of per-step poses of named bodies (T, N, ...) as an adapter reports them."""
        index = {name: i for i, name in enumerate(names)}
        missing = [self.body_names[b] for b in self.moving if self.body_names[b] not in index]
        if missing:
            raise ValueError(f"body poses lack {len(missing)} bodies of the scene model, e.g. {missing[0]!r}")
        rows = [index[self.body_names[b]] for b in self.moving]
        return PoseColumns(tuple(self.body_names[b] for b in self.moving),
                           np.asarray(positions)[:, rows], np.asarray(quaternions)[:, rows])

    # ---- logging --------------------------------------------------------------------------------------------

    def log_geometry(self, rec: rr.RecordingStream, root: str = "scene", *, ghost_objects: bool = True) -> None:
        """Log every visible geom once (static): world geometry, the replayed bodies, and the ghost."""
        rec.log(root, rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        self.forward(self.data.qpos)
        for g in self.geoms.get(self.static_root, []):
            # world-welded geoms: their pose in the world is fixed by the model
            q = np.empty(4)
            mujoco.mju_mat2Quat(q, self.data.geom_xmat[g])
            self._log_geom(rec, f"{root}/world/{self.geom_entity(g)}", g, self.data.geom_xpos[g], q, None,
                           self.mesh_cell)
        for body in self.moving:
            for source, color in (("replayed", None), ("recorded", GHOST_RGBA)):
                if source == "recorded" and body in self.object_bodies and not ghost_objects:
                    continue
                for g in self.geoms[body]:
                    # geom pose relative to its weld root: body_pos/quat chain is fixed within a weld group
                    pos, quat = self._pose_in_root(g, body)
                    cell = self.mesh_cell if color is None else self.ghost_cell
                    self._log_geom(rec, f"{root}/{source}/{self.entity(body)}/{self.geom_entity(g)}", g, pos, quat,
                                   color, cell)

    def _pose_in_root(self, g: int, root: int) -> tuple[np.ndarray, np.ndarray]:
        root_rot = self.data.xmat[root].reshape(3, 3)
        pos = root_rot.T @ (self.data.geom_xpos[g] - self.data.xpos[root])
        rot = root_rot.T @ self.data.geom_xmat[g].reshape(3, 3)
        q = np.empty(4)
        mujoco.mju_mat2Quat(q, rot.reshape(-1))
        return pos, q

    def _log_geom(self, rec: rr.RecordingStream, path: str, g: int, pos: np.ndarray, quat_wxyz: np.ndarray,
                  color: tuple[int, int, int, int] | None, cell: float) -> None:
        rgba = color or _to_u8(geom_rgba(self.model, g))
        shape = geom_shape(self.model, g, rgba, cell)
        if shape is None:
            return
        # one chunk per geom (a chunk costs a few kB of schema, as much as a decimated mesh)
        rec.log(path, rr.Transform3D(translation=pos, quaternion=wxyz_to_xyzw(quat_wxyz)), shape, static=True)


def send_poses(rec: rr.RecordingStream, root: str, poses: PoseColumns, indexes: list) -> None:
    """One send_columns per body: its world pose at every step."""
    xyzw = wxyz_to_xyzw(poses.quaternions)
    for i, name in enumerate(poses.names):
        rec.send_columns(f"{root}/{part(name)}", indexes=indexes,
                         columns=rr.Transform3D.columns(translation=poses.positions[:, i], quaternion=xyzw[:, i]))


def log_camera(rec: rr.RecordingStream, path: str, *, fovy_deg: float, width: int, height: int,
               positions: np.ndarray, xyzw: np.ndarray, indexes: list, plane_m: float = 0.15) -> None:
    """A pinhole frustum at `path` (where the recorded image is logged), posed per step; MuJoCo cameras look
    along -z with +y up (Rerun's RUB)."""
    focal = float(0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2))
    rec.log(path, rr.Pinhole(focal_length=focal, width=width, height=height, camera_xyz=rr.ViewCoordinates.RUB,
                             image_plane_distance=plane_m), static=True)
    if np.allclose(positions, positions[:1]) and np.allclose(xyzw, xyzw[:1]):
        rec.log(path, rr.Transform3D(translation=positions[0], quaternion=xyzw[0]), static=True)
    else:
        rec.send_columns(path, indexes=indexes, columns=rr.Transform3D.columns(translation=positions,
                                                                               quaternion=xyzw))


class SceneRecorder:
    """One replay's 3-D scene in a RerunSink: geometry at the end with the poses buffered on the way.

    Replayed bodies come from the adapter's body_poses() carried by each StepRecord; the ghost is this
    scene's own forward kinematics of the recorded state. Recorded objects join the ghost where the
    dataset has their pose (environment_state: position and orientation) or the meter measured it
    (position only: the orientation is then the simulator's). Steps without a recorded pose keep the
    last one. Dataset cameras (key -> simulator camera) become pinhole frusta at recorded/<key>, where
    the recorded image is logged, so the 3-D view shows each frame in its frustum.
    """

    wants_body_poses = True

    def __init__(self, scene: MujocoScene, cameras: Mapping[str, str]):
        self.scene = scene
        self.cameras = dict(cameras)
        self._sizes: dict[str, tuple[int, int]] = {}
        self._names: tuple[str, ...] | None = None
        self._positions: list[np.ndarray] = []
        self._quaternions: list[np.ndarray] = []
        self._states: list[np.ndarray] = []
        self._objects: list[dict[str, np.ndarray] | None] = []
        self._object_quats: list[dict[str, np.ndarray] | None] = []

    def views(self) -> list:
        import rerun.blueprint as rrb

        contents = ["+ /scene/**", *[f"+ /recorded/{part(key)}" for key in self.cameras]]
        return [rrb.Spatial3DView(name="3-D: replayed, recorded ghost (blue)", origin="/", contents=contents)]

    def on_step(self, step, rec: rr.RecordingStream | None = None) -> None:
        del rec  # buffered: everything is sent at finish
        if step.body_poses is None:
            return
        names, positions, quaternions = step.body_poses
        self._names = self._names or tuple(names)
        self._positions.append(np.asarray(positions, dtype=np.float64))
        self._quaternions.append(np.asarray(quaternions, dtype=np.float64))
        self._states.append(np.asarray(step.recorded_state, dtype=np.float64))
        self._objects.append(step.recorded_objects)
        self._object_quats.append(step.recorded_object_quaternions)
        for key, frame in step.recorded_frames.items():
            if key in self.cameras and key not in self._sizes:
                self._sizes[key] = (int(frame.shape[0]), int(frame.shape[1]))

    def finish(self, rec: rr.RecordingStream, indexes: list) -> None:
        """Log the geometry (static) and every buffered pose; `indexes` are the steps' time columns."""
        if self._names is None:
            return
        replayed = self.scene.select(self._names, np.stack(self._positions), np.stack(self._quaternions))
        objects, have_objects = self._recorded_objects(replayed)
        self.scene.log_geometry(rec, ghost_objects=have_objects)
        send_poses(rec, "scene/replayed", replayed, indexes)
        ghost, cams = self.scene.ghost(np.stack(self._states), objects,
                                       [self.cameras[k] for k in self._sizes])
        if not have_objects:
            keep = [i for i, b in enumerate(self.scene.moving) if b not in self.scene.object_bodies]
            ghost = PoseColumns(tuple(ghost.names[i] for i in keep), ghost.positions[:, keep],
                                ghost.quaternions[:, keep])
        send_poses(rec, "scene/recorded", ghost, indexes)
        for key, (height, width) in self._sizes.items():
            camera = self.cameras[key]
            cid = mujoco.mj_name2id(self.scene.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if cid < 0:
                continue
            positions, xyzw = cams[camera]
            log_camera(rec, f"recorded/{part(key)}", fovy_deg=float(self.scene.model.cam_fovy[cid]), width=width,
                       height=height, positions=positions, xyzw=xyzw, indexes=indexes)

    def _recorded_objects(self, replayed: PoseColumns):
        """Per step {object body name: (position, wxyz)} for the ghost, holding the last recorded pose."""
        seen = [o for o in self._objects if o]
        if not self.scene.object_bodies or not seen:
            return [None] * len(self._objects), False
        column = {name: i for i, name in enumerate(replayed.names)}
        last: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        first = {name: np.asarray(p, dtype=np.float64) for name, p in seen[0].items() if p is not None}
        out = []
        for t, (positions, quats) in enumerate(zip(self._objects, self._object_quats, strict=True)):
            step: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for name in sorted(set(first) | set(positions or {})):
                position = (positions or {}).get(name)
                if position is None:
                    step[name] = last.get(name) or (first[name], self._body_quat(replayed, column, name, t))
                    continue
                quat = (quats or {}).get(name)
                if quat is None:  # measured: position only
                    quat = self._body_quat(replayed, column, name, t)
                step[name] = (np.asarray(position, dtype=np.float64), np.asarray(quat, dtype=np.float64))
                last[name] = step[name]
            out.append(step)
        return out, True

    def _body_quat(self, replayed: PoseColumns, column: dict[str, int], name: str, t: int) -> np.ndarray:
        i = column.get(self.scene.object_body_names.get(name, name))
        return np.array([1.0, 0, 0, 0]) if i is None else replayed.quaternions[t, i]
