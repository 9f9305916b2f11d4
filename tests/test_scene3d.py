"""The 3-D scene module on a tiny MuJoCo model written here: geometry once, poses per step, ghost = FK."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import rerun as rr
from rerun.chunk import RrdReader

from replay_check import scene3d

TINY = """
<mujoco>
  <asset><mesh name="tetra" vertex="0 0 0  0.1 0 0  0 0.1 0  0 0 0.1"/></asset>
  <worldbody>
    <geom name="floor" type="plane" size="1 1 0.1" rgba="0.8 0.8 0.8 1"/>
    <camera name="overhead" pos="0 0 2" xyaxes="1 0 0 0 1 0" fovy="60"/>
    <body name="link1" pos="0 0 0.5">
      <joint name="j1" type="hinge" axis="0 0 1"/>
      <geom name="arm" type="capsule" fromto="0 0 0 0.3 0 0" size="0.02"/>
      <body name="link2" pos="0.3 0 0">
        <joint name="j2" type="hinge" axis="0 1 0"/>
        <geom name="hand" type="box" size="0.05 0.02 0.02" pos="0.05 0 0"/>
        <geom name="tip" type="mesh" mesh="tetra" pos="0.1 0 0"/>
        <camera name="wrist" pos="0.1 0 0" fovy="45"/>
      </body>
    </body>
    <body name="ball" pos="0.5 0.5 0.1">
      <freejoint/>
      <geom name="ball" type="sphere" size="0.05" rgba="1 0 0 1"/>
    </body>
    <body name="hidden" pos="0 0 1"><geom name="hidden" group="4" type="box" size=".1 .1 .1"/></body>
  </worldbody>
</mujoco>
"""
STEPS = 12


def qpos_of(state, objects):
    """Dataset state (2 hinge angles) and the ball's recorded pose -> qpos."""
    position, quat = (objects or {}).get("ball", (np.array([0.5, 0.5, 0.1]), np.array([1.0, 0, 0, 0])))
    return np.concatenate([state, position, quat])


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_string(TINY)


def recorded(n=STEPS):
    t = np.arange(n)
    states = np.stack([0.3 * np.sin(t / 3), 0.2 * t / n], axis=1)
    half = 0.05 * t
    objects = [{"ball": (np.array([0.5 + 0.01 * i, 0.5, 0.1]), np.array([np.cos(h), 0, 0, np.sin(h)]))}
               for i, h in enumerate(half)]
    return states, objects


def chunks_by_entity(path):
    found: dict[str, list] = {}
    for chunk in RrdReader(path).stream():
        found.setdefault(str(chunk.entity_path), []).append(chunk)
    return found


def values(chunks, column):
    rows = []
    for chunk in chunks:
        batch = chunk.to_record_batch()
        if column in batch.schema.names:
            rows += batch.column(column).to_pylist()
    return rows


@pytest.fixture(scope="module")
def rrd(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "scene.rrd"
    scene = scene3d.MujocoScene(model, qpos_of)
    rec = rr.RecordingStream("test-scene")
    rec.save(str(path))
    scene.log_geometry(rec)
    states, objects = recorded()
    ghost, cams = scene.ghost(states, objects, ["wrist"])
    t = np.arange(STEPS)
    indexes = [rr.TimeColumn("frame_index", sequence=t), rr.TimeColumn("timestamp", duration=t / 50)]
    scene3d.send_poses(rec, "scene/recorded", ghost, indexes)
    scene3d.send_poses(rec, "scene/replayed", ghost, indexes)
    scene3d.log_camera(rec, "recorded/wrist", fovy_deg=45, width=64, height=48, positions=cams["wrist"][0],
                       xyzw=cams["wrist"][1], indexes=indexes)
    rec.flush()
    rec.disconnect()
    return path


def test_moving_bodies_and_objects_come_from_the_model(model):
    scene = scene3d.MujocoScene(model, qpos_of)
    names = {scene.body_names[b] for b in scene.moving}
    assert names == {"link1", "link2", "ball"}
    assert {scene.body_names[b] for b in scene.object_bodies} == {"ball"}


def test_every_visible_geom_is_logged_once_as_static(rrd):
    chunks = chunks_by_entity(rrd)
    expected = {"/scene/world/floor": "Boxes3D", "/scene/replayed/link1/arm": "Capsules3D",
                "/scene/replayed/link2/hand": "Boxes3D", "/scene/replayed/link2/tip": "Mesh3D",
                "/scene/replayed/ball/ball": "Ellipsoids3D", "/scene/recorded/link2/tip": "Mesh3D"}
    for entity, archetype in expected.items():
        assert entity in chunks, entity
        assert len(chunks[entity]) == 1 and chunks[entity][0].is_static and chunks[entity][0].num_rows == 1
        assert any(name.startswith(archetype + ":") for name in chunks[entity][0].to_record_batch().schema.names)
    assert not any("hidden" in entity for entity in chunks)  # geom group 4 is not drawn by default
    ghost_color = values(chunks["/scene/recorded/link2/tip"], "Mesh3D:albedo_factor")[0][0]
    assert ghost_color & 0xFF < 255  # translucent


def test_a_transform_per_moving_body_per_step(rrd):
    chunks = chunks_by_entity(rrd)
    for source in ("recorded", "replayed"):
        for body in ("link1", "link2", "ball"):
            steps = values(chunks[f"/scene/{source}/{body}"], "frame_index")
            assert steps == list(range(STEPS))
            assert len(values(chunks[f"/scene/{source}/{body}"], "Transform3D:translation")) == STEPS


@pytest.mark.parametrize("t", [0, 5, STEPS - 1])
def test_ghost_pose_is_forward_kinematics_of_the_recorded_joints(rrd, model, t):
    states, objects = recorded()
    data = mujoco.MjData(model)
    data.qpos[:] = qpos_of(states[t], objects[t])
    mujoco.mj_kinematics(model, data)
    chunks = chunks_by_entity(rrd)
    for body in ("link1", "link2", "ball"):
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        translation = np.asarray(values(chunks[f"/scene/recorded/{body}"], "Transform3D:translation")[t]).ravel()
        xyzw = np.asarray(values(chunks[f"/scene/recorded/{body}"], "Transform3D:quaternion")[t]).ravel()
        np.testing.assert_allclose(translation, data.xpos[b], atol=1e-6)
        wxyz = np.concatenate([xyzw[3:], xyzw[:3]])
        assert min(np.abs(wxyz - data.xquat[b]).max(), np.abs(wxyz + data.xquat[b]).max()) < 1e-6


def test_a_body_mounted_camera_gets_a_pose_per_step(rrd):
    chunks = chunks_by_entity(rrd)["/recorded/wrist"]
    assert len(values(chunks, "Transform3D:translation")) == STEPS
    assert values(chunks, "Pinhole:resolution") == [[[64.0, 48.0]]]


def test_decimation_keeps_the_shape_and_drops_collapsed_triangles():
    # a 10 x 10 grid of 1 cm squares, clustered at 2.5 cm: fewer vertices, same extent, no degenerate faces
    xs, ys = np.meshgrid(np.linspace(0, 0.1, 11), np.linspace(0, 0.1, 11))
    vertices = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    faces = []
    for i in range(10):
        for j in range(10):
            a = i * 11 + j
            faces += [[a, a + 1, a + 12], [a, a + 12, a + 11]]
    v, f = scene3d.decimate(vertices, np.asarray(faces), 0.025)
    assert len(v) < len(vertices) / 3 and 0 < len(f) < len(faces) / 3
    assert np.all(f[:, 0] != f[:, 1]) and np.all(f[:, 1] != f[:, 2]) and np.all(f[:, 0] != f[:, 2])
    assert np.ptp(v[:, 0]) > 0.08


# ---- a real ALOHA replay through RerunSink, read back from the .rrd ------------------------------------------

ALOHA_STEPS = 24


@pytest.fixture(scope="module")
def aloha_rrd(tmp_path_factory):
    """A short transfer-cube replay (images, environment_state) recorded with the 3-D scene."""
    from replay_check.families import family
    from replay_check.profiles import available_profiles
    from replay_check.replay import replay_episode
    from replay_check.steps import ReplaySettings
    from replay_check.viz import RerunSink
    from tests.sim_episodes import aloha_episode

    profile = available_profiles()["aloha-transfer-cube"]
    episode = aloha_episode("transfer_cube", steps=ALOHA_STEPS, seed=3, render=True)
    path = tmp_path_factory.mktemp("aloha_scene") / "recording.rrd"
    cameras = {key: profile.cameras[key] for key in episode.cameras}
    sink = RerunSink(recording_name="scene test", rrd_path=path, cameras=list(episode.cameras),
                     state_names=list(episode.state_names or []), groups=profile.state_groups,
                     objects=list(profile.objects), fps=episode.fps,
                     scene=family("aloha").scene(profile.task, tuple(profile.objects), cameras))
    replay_episode(episode, profile, ReplaySettings(mode="images", image_stride=4, tolerances=profile.tolerances),
                   sinks=[sink])
    return path, episode


@pytest.mark.slow
def test_aloha_meshes_are_logged_once_and_bodies_posed_every_step(aloha_rrd):
    path, _ = aloha_rrd
    chunks = chunks_by_entity(path)
    meshes = [e for e, cs in chunks.items() if any(n.startswith("Mesh3D:") for c in cs
                                                    for n in c.to_record_batch().schema.names)]
    assert len(meshes) > 20  # the two arms' links, replayed and ghost, plus the world-fixed bases and table
    for entity in meshes:
        assert len(chunks[entity]) == 1 and chunks[entity][0].is_static and chunks[entity][0].num_rows == 1
    bodies = [e for e, cs in chunks.items() if e.startswith(("/scene/replayed/", "/scene/recorded/"))
              and any(not c.is_static for c in cs)]
    assert {e.split("/", 3)[3] for e in bodies} >= {"box", r"vx300s_left\/gripper_link"}
    assert len(bodies) == 2 * 17  # 8 moving links per arm and the cube, replayed and ghost
    for entity in bodies:
        assert values(chunks[entity], "frame_index") == list(range(ALOHA_STEPS)), entity


@pytest.mark.slow
@pytest.mark.parametrize("t", [0, 11, ALOHA_STEPS - 1])
def test_aloha_ghost_is_forward_kinematics_of_the_recorded_joints(aloha_rrd, t):
    from replay_check.sims.aloha import load_model, robot_state_to_qpos

    path, episode = aloha_rrd
    model = load_model("transfer_cube")
    data = mujoco.MjData(model)
    data.qpos[:16] = robot_state_to_qpos(episode.state[t])
    data.qpos[16:23] = episode.environment_state[t]
    mujoco.mj_kinematics(model, data)
    chunks = chunks_by_entity(path)
    checked = 0
    for b in range(1, model.nbody):
        entity = f"/scene/recorded/{rr.escape_entity_path_part(model.body(b).name)}"
        if entity not in chunks:
            continue
        translation = np.asarray(values(chunks[entity], "Transform3D:translation")[t]).ravel()
        xyzw = np.asarray(values(chunks[entity], "Transform3D:quaternion")[t]).ravel()
        np.testing.assert_allclose(translation, data.xpos[b], atol=1e-6, err_msg=entity)
        wxyz = np.concatenate([xyzw[3:], xyzw[:3]])
        assert min(np.abs(wxyz - data.xquat[b]).max(), np.abs(wxyz + data.xquat[b]).max()) < 1e-6, entity
        checked += 1
    assert checked >= 17  # 8 moving links per arm and the cube


@pytest.mark.slow
def test_aloha_camera_frustum_holds_the_recorded_image(aloha_rrd):
    path, _ = aloha_rrd
    chunks = chunks_by_entity(path)["/recorded/observation.images.top"]
    assert values(chunks, "Pinhole:resolution") == [[[640.0, 480.0]]]
    assert values(chunks, "Transform3D:translation")  # placed where the model's `top` camera is
    assert any(n.startswith(("EncodedImage:", "Image:")) for c in chunks for n in c.to_record_batch().schema.names)
