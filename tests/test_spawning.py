"""Spawned workers (the ensemble's, validate's local pool) leave no process running when the command ends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_render_workers import ORPHANS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")

ENSEMBLE = """
import numpy as np
from replay_check.ensemble import run_ensemble
from replay_check.profiles import available_profiles
from replay_check.sims import SimSpec
from replay_check.sims.base import InitialState, ObjectUncertainty, Pose

spec = SimSpec(family="pusht", task="pusht", cameras={}, module=available_profiles()["pusht"].family_module)
initial = InitialState(np.array([256.0, 420.0]), {"block": Pose.planar(256.0, 300.0, 0.3)}, "estimated",
                       uncertainty={"block": ObjectUncertainty(np.array([1.0, 1.0, 0.0]), 0.01)})
members, cost = run_ensemble(spec, initial, np.tile([256.0, 400.0], (20, 1)), 4, processes=2)
assert cost["processes"] == 2 and len(members) == 4
"""


def _orphans(tmp_path, command: list[str]) -> subprocess.CompletedProcess:
    log = tmp_path / "stderr.txt"
    out = subprocess.run([sys.executable, "-c", ORPHANS, str(log), *command], capture_output=True, text=True,
                         timeout=400)
    out.stderr = log.read_text()
    return out


def test_an_ensemble_over_spawned_workers_leaves_no_resource_tracker_behind(tmp_path):
    out = _orphans(tmp_path, [sys.executable, "-c", ENSEMBLE])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == ""  # an orphan line per process left running or unreaped
    assert "leaked" not in out.stderr  # the tracker was stopped after the queue's semaphores were released


@pytest.mark.slow
def test_validate_with_a_local_pool_leaves_no_process_behind(recorded_cube, tmp_path):
    command = [sys.executable, "-m", "replay_check", "validate", "--root", str(recorded_cube), "--workers", "2",
               "--mode", "state", "--report-dir", str(tmp_path / "reports")]
    out = _orphans(tmp_path, command)
    assert out.returncode in (0, 1), out.stderr[-2000:]
    assert out.stdout == ""
