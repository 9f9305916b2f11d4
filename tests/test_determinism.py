"""Same input, same settings: byte-identical steps.parquet and report.json apart from its timing fields.

Each run is its own process, as two CI runs would be: object addresses (and so the iteration order
of sets of simulator objects) differ between processes, which is how PushT's reward once differed in
its last bit. report.json's `timings` block is the only part allowed to differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pusht_root(tmp_path_factory) -> Path:
    from replay_check.record import record_dataset

    root = tmp_path_factory.mktemp("determinism") / "ds"
    record_dataset("pusht", 1, root, seed=4, env_state=False, progress=False, steps=40)
    return root


def _run(root: Path, report_dir: Path, seed: str) -> Path:
    env = dict(os.environ, PYTHONHASHSEED=seed, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    proc = subprocess.run([sys.executable, "-m", "replay_check", "run", "--root", str(root), "--no-rerun",
                           "--no-plots", "--report-dir", str(report_dir), "-q"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return next(report_dir.rglob("episode_000000"))


def test_two_runs_give_identical_reports_and_steps(pusht_root, tmp_path):
    first = _run(pusht_root, tmp_path / "a", "1")
    second = _run(pusht_root, tmp_path / "b", "2")
    assert (first / "steps.parquet").read_bytes() == (second / "steps.parquet").read_bytes()
    reports = [json.loads((folder / "report.json").read_text()) for folder in (first, second)]
    for report in reports:
        timings = report.pop("timings")
        assert timings["timings_ms_per_step"] and timings["step_loop"]  # they exist, and only here
    assert reports[0] == reports[1]
    assert (first / "report.md").read_text() == (second / "report.md").read_text()


def test_pusht_coverage_does_not_depend_on_the_iteration_order_of_pymunk_shapes(monkeypatch):
    """block.shapes is a set ordered by address; both orders must give the same reward, to the bit."""
    import numpy as np
    import pymunk

    from replay_check.sims.pusht import PushTAdapter

    adapter = PushTAdapter("pusht")
    rng = np.random.default_rng(0)
    poses = [(256 + rng.uniform(-20, 20), 256 + rng.uniform(-20, 20), np.pi / 4 + rng.uniform(-0.3, 0.3))
             for _ in range(30)]
    original = pymunk.Body.shapes
    values = []
    for reverse in (False, True):
        monkeypatch.setattr(pymunk.Body, "shapes",
                            property(lambda body, r=reverse: sorted(original.fget(body), key=id, reverse=r)))
        covered = []
        for pose in poses:
            adapter.set_pose(np.array([60.0, 60.0]), pose)
            covered.append(adapter.coverage())
        values.append(covered)
        monkeypatch.undo()
    assert values[0] == values[1]
    assert min(values[0]) > 0  # the poses overlap the goal, so the intersection is computed
