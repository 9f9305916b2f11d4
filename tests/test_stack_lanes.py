"""Other stacks' replays logged into the first stack's recording (replayed/<stack>/<camera>, errors/<stack>/...)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from replay_check.stacks.lanes import LaneRecorder, LaneSink
from replay_check.steps import StepRecord


class FakeRec:
    def __init__(self):
        self.logged, self.columns, self.blueprints = [], [], []

    def set_time(self, *args, **kwargs):
        pass

    def log(self, path, item):
        self.logged.append(path)

    def send_columns(self, path, indexes, columns):
        self.columns.append(path)

    def send_blueprint(self, blueprint):
        self.blueprints.append(blueprint)


def step(t: int, frame: np.ndarray | None) -> StepRecord:
    return StepRecord(t=t, timestamp=t / 50, recorded_state=np.zeros(14), replayed_state=np.full(14, t / 10),
                      action=None, replayed_objects={}, replayed_frames={} if frame is None else {"top": frame})


def test_a_lane_carries_frames_errors_and_joints_of_another_stack():
    import rerun.blueprint as rrb

    lane = LaneRecorder("aloha-2023")
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for t in range(4):
        lane.on_step(step(t, frame if t % 2 == 0 else None), {})
    lane.finish(SimpleNamespace(metrics={"group/left_arm": np.array([0.0, 0.1, np.nan, 0.3]),
                                         "reward": np.zeros(4)}))
    assert sorted(lane.frames) == [0, 2] and lane.frames[0]["top"][:2] == b"\xff\xd8"  # JPEG
    sink = LaneSink([lane])
    rec = FakeRec()
    sink.bind(SimpleNamespace(rec=rec, cameras=["top"], blueprint=rrb.Blueprint(rrb.Vertical())))
    for t in range(4):
        sink.on_step(step(t, frame), {})
    sink.finish(SimpleNamespace(meta=SimpleNamespace(fps=50.0),
                                initial_state=SimpleNamespace(robot=np.zeros(14))))
    assert rec.logged == ["replayed/aloha-2023/top", "replayed/aloha-2023/top"]
    assert "errors/aloha-2023/group/left_arm" in rec.columns and not any("reward" in c for c in rec.columns)
    assert "joints/state_0/aloha-2023" in rec.columns and len(rec.blueprints) == 1
