"""Render workers started before the replay (`start_render_workers`): `run` starts them before its sinks,
replay_episode takes them over, and whatever fails in between closes them (no process is left)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from replay_check import pipeline
from replay_check.cli import cli
from replay_check.errors import VideoError
from replay_check.profiles import available_profiles
from replay_check.render_workers import RenderWorkers
from replay_check.replay import adapter_for, plan_render_workers, replay_episode, start_render_workers
from replay_check.steps import ReplaySettings
from tests.cli_checks import error_line
from tests.sim_episodes import pusht_episode


def _gone(pid: int) -> bool:
    """Whether process `pid` has exited and been reaped (a zombie still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class _Started:
    """Records every RenderWorkers as it is created, and the pid of every worker process they start."""

    def __init__(self, monkeypatch):
        from replay_check.worker.proxy import ProxyAdapter

        self.created: list[RenderWorkers] = []
        self.pids: list[int] = []
        init, start = RenderWorkers.__init__, ProxyAdapter.__init__

        def record_init(workers, *args, **kwargs):
            self.created.append(workers)
            init(workers, *args, **kwargs)

        def record_start(proxy, *args, **kwargs):
            start(proxy, *args, **kwargs)
            self.pids.append(proxy.pid)

        monkeypatch.setattr(RenderWorkers, "__init__", record_init)
        monkeypatch.setattr(ProxyAdapter, "__init__", record_start)

    def left_running(self) -> list[int]:
        """Worker processes not exited and reaped, once every start has ended (closed or not)."""
        for workers in self.created:
            for event in workers._up:
                event.wait()
        return [pid for pid in self.pids if not _gone(pid)]


@pytest.mark.slow
def test_run_starts_the_workers_before_its_sinks_and_a_bad_input_there_stops_them(recorded_cube, tmp_path,
                                                                                  monkeypatch):
    """A bad video found while the sinks are built (after the workers started): one line, exit 2, no worker left."""
    started = _Started(monkeypatch)
    before_sinks = []

    def sinks(*args, **kwargs):
        before_sinks.append(len(started.created))
        raise VideoError("observation.images.top: no video packets for the episode at t=0.0000s")

    monkeypatch.setattr(pipeline, "_sinks", sinks)
    reports = tmp_path / "reports"
    result = CliRunner().invoke(cli, ["run", "--root", str(recorded_cube), "--mode", "images", "--render-workers",
                                      "2", "--no-plots", "-q", "--report-dir", str(reports)])
    error_line(result, "no video packets")
    assert before_sinks == [1]  # the workers were starting while the sinks were built
    assert started.left_running() == [] and len(started.pids) == 2
    assert not any(reports.rglob("report.json"))


def _pusht():
    profile = available_profiles()["pusht"]
    episode, initial = pusht_episode(12)
    return episode, initial, profile, ReplaySettings(mode="images", tolerances=profile.tolerances)


def test_replay_takes_over_prestarted_workers_and_gives_the_same_result(monkeypatch):
    started = _Started(monkeypatch)
    episode, initial, profile, settings = _pusht()
    adapter = adapter_for(episode, profile)
    try:
        own = replay_episode(episode, profile, settings, adapter=adapter, initial_state=initial, render_workers=1)
        given = start_render_workers(episode, profile, settings, render_workers=1)
        assert given is not None and given.plan.steps_in_worker
        given.workers.ready()  # up before the replay: the worker steps the physics from step 0
        result = replay_episode(episode, profile, settings, adapter=adapter, initial_state=initial,
                                render_workers=1, workers=given)
    finally:
        adapter.close()
    assert len(started.created) == 2  # the replay given workers started none of its own
    assert started.left_running() == [] and len(started.pids) == 2  # and closed the given ones
    assert result.step_loop["steps_in_worker"] and result.step_loop["worker_from_step"] == 0
    assert sorted(result.metrics) == sorted(own.metrics)
    for column, values in own.metrics.items():
        assert np.array_equal(result.metrics[column], values, equal_nan=True), column
    assert result.summary == own.summary and result.verdict == own.verdict


def test_workers_started_for_another_replay_are_refused_and_closed(monkeypatch):
    started = _Started(monkeypatch)
    episode, initial, profile, settings = _pusht()
    given = start_render_workers(episode, profile, settings, render_workers=2)  # two, not stepping the physics
    adapter = adapter_for(episode, profile)
    try:
        with pytest.raises(ValueError, match="do not match"):
            replay_episode(episode, profile, settings, adapter=adapter, initial_state=initial, render_workers=1,
                           workers=given)
    finally:
        adapter.close()
    assert len(started.created) == 1 and started.left_running() == [] and len(started.pids) == 2


def test_a_replay_that_needs_no_workers_plans_none():
    episode, _, profile, settings = _pusht()
    assert plan_render_workers(episode, profile, settings, render_workers=0) is None
    state = ReplaySettings(mode="state", tolerances=profile.tolerances)
    assert start_render_workers(episode, profile, state, render_workers=2) is None
    strided = ReplaySettings(mode="images", tolerances=profile.tolerances, image_stride=2)
    plan = plan_render_workers(episode, profile, strided, render_workers=1)
    assert plan is not None and not plan.steps_in_worker  # renders snapshots; this process steps
