"""Pipelined image mode: render workers give the serial path's frames and metrics bit for bit, in bounded order."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from replay_check import replay as replay_module
from replay_check.profiles import available_profiles
from replay_check.render_workers import RenderWorkers, auto_worker_count
from replay_check.replay import PIPELINE_DEPTH_PER_WORKER, adapter_for, replay_episode, sim_spec
from replay_check.sims.base import InitialState, Pose
from replay_check.steps import ReplaySettings
from tests.sim_episodes import aloha_episode, pusht_episode


class CountingAdapter:
    """An adapter that counts physics steps, so a sink can see how far physics ran ahead."""

    def __init__(self, inner):
        self.inner = inner
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.inner.step(action)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Keep:
    """A sink keeping every replayed frame and, per step, how many physics steps had run by then."""

    def __init__(self, adapter: CountingAdapter):
        self.adapter = adapter
        self.frames: list[dict[str, np.ndarray]] = []
        self.ahead: list[int] = []

    def on_step(self, step, row):
        self.frames.append({k: v.copy() for k, v in step.replayed_frames.items()})
        self.ahead.append(self.adapter.steps - step.t)

    def finish(self, result):
        pass


def _case(family: str):
    if family == "aloha":
        profile = available_profiles()["aloha-transfer-cube"]
        cube = {"cube": Pose(np.array([0.05, 0.5, 0.05]))}
        episode = aloha_episode("transfer_cube", steps=10, seed=3, render=True, env_state=False, objects=cube)
        return episode, InitialState(episode.state[0], cube, "truth"), profile
    episode, initial = pusht_episode(12)
    return episode, initial, available_profiles()["pusht"]


def _replay(episode, initial, profile, workers: int):
    adapter = CountingAdapter(adapter_for(episode, profile))
    sink = Keep(adapter)
    try:
        result = replay_episode(episode, profile, ReplaySettings(mode="images", tolerances=profile.tolerances),
                                sinks=[sink], adapter=adapter, initial_state=initial, render_workers=workers)
    finally:
        adapter.inner.close()
    return result, sink


@pytest.mark.slow
@pytest.mark.parametrize("family", ["aloha", "pusht"])
def test_pipelined_replay_gives_the_serial_frames_and_metrics_bit_for_bit(family, monkeypatch):
    # Two workers on two cores: their renderers rasterise in one thread each (renderer_environment), the
    # serial replay's with llvmpipe's default threads; the frames must not differ for that either.
    monkeypatch.setattr("replay_check.render_workers.available_cores", lambda: 2)
    episode, initial, profile = _case(family)
    serial, serial_sink = _replay(episode, initial, profile, 0)
    piped, piped_sink = _replay(episode, initial, profile, 2)

    assert sorted(piped.metrics) == sorted(serial.metrics)
    for column, values in serial.metrics.items():
        assert np.array_equal(piped.metrics[column], values, equal_nan=True), column
    assert any(c.endswith("/psnr") for c in serial.metrics) and any(c.startswith("object_err/") for c in serial.metrics)
    assert np.isfinite(serial.metrics[next(c for c in serial.metrics if c.startswith("object_err/"))]).all()
    assert len(piped_sink.frames) == len(serial_sink.frames) == episode.length
    for mine, theirs in zip(piped_sink.frames, serial_sink.frames, strict=True):
        assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in theirs)
    assert piped.divergence == serial.divergence and piped.verdict == serial.verdict
    assert piped.summary == serial.summary

    # Serial compares each step before the next physics step; pipelined runs ahead, but boundedly.
    assert serial_sink.ahead == [0] * episode.length
    depth = PIPELINE_DEPTH_PER_WORKER * 2 + 2
    assert max(piped_sink.ahead) > 0 and max(piped_sink.ahead) <= depth + 1
    loop = piped.step_loop
    assert loop["render_workers"] == 2 and loop["cpu_s"] > 0 and serial.step_loop["render_workers"] == 0


def test_worker_count_follows_the_cores():
    assert auto_worker_count(1) == 0
    assert auto_worker_count(2) == 2
    assert auto_worker_count(64) == 4


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as raw:
        pairs = [item.split(b"=", 1) for item in raw.read().split(b"\0") if b"=" in item]
    return {key.decode(): value.decode() for key, value in pairs}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("cores", "users", "expected"), [(1, None, "0"), (4, None, None), (1, "3", "3")])
def test_a_worker_per_core_rasterises_in_one_thread_unless_the_user_says_otherwise(monkeypatch, cores, users,
                                                                                   expected):
    from replay_check.sims import SimSpec

    monkeypatch.setattr("replay_check.render_workers.available_cores", lambda: cores)
    if users is None:
        monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("LP_NUM_THREADS", users)
    spec = SimSpec(family="pusht", task="pusht", cameras={"top": (96, 96)},
                   module=available_profiles()["pusht"].family_module)
    with RenderWorkers(spec, 1, depth=2) as workers:
        workers.ready()
        assert _environ(workers.pids[0]).get("LP_NUM_THREADS") == expected


def test_a_worker_that_cannot_start_is_an_operational_error():
    from replay_check.errors import WorkerError

    episode, _, profile = _case("pusht")
    workers = RenderWorkers(sim_spec(episode, profile), 1, depth=2, python=sys.executable + "-missing")
    try:
        with pytest.raises(WorkerError, match="cannot start"):
            workers.ready()
    finally:
        workers.close()


@pytest.mark.parametrize("take_over", [None, 0, 4])
def test_pusht_steps_and_draws_in_one_worker_by_default_and_gives_the_serial_result_bit_for_bit(take_over,
                                                                                              monkeypatch):
    """Its frames are cheap: one worker steps the physics ahead and renders; this process only compares.

    Until the worker is up this process steps and renders itself; `take_over` makes the worker take over
    at that step (waiting for it), None leaves it to the worker's start (any step, or none).
    """
    episode, initial, profile = _case("pusht")
    serial, serial_sink = _replay(episode, initial, profile, 0)
    if take_over is not None:
        monkeypatch.setattr(replay_module._Handover, "up",
                            lambda self, t: t >= take_over and (self.workers.ready(0) or True))
    result, sink = _replay(episode, initial, profile, None if take_over is None else 1)
    loop = result.step_loop
    if take_over is None:
        assert loop["render_workers"] == min(1, auto_worker_count())
    else:
        assert loop["steps_in_worker"] and loop["worker_from_step"] == take_over
        assert 0 <= loop["worker_from_s"] <= loop["wall_s"]
        # this process's adapter stepped until the worker took over, then stood still
        assert sink.ahead == [0] * max(1, take_over) + [max(0, take_over - 1) - t
                                                        for t in range(max(1, take_over), episode.length)]
    assert not serial.step_loop["steps_in_worker"] and serial.step_loop["worker_from_step"] is None
    assert sorted(result.metrics) == sorted(serial.metrics)
    for column, values in serial.metrics.items():
        assert np.array_equal(result.metrics[column], values, equal_nan=True), column
    assert len(sink.frames) == episode.length
    for mine, theirs in zip(sink.frames, serial_sink.frames, strict=True):
        assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in theirs)
    assert result.summary == serial.summary and result.verdict == serial.verdict
    assert np.isfinite(serial.metrics["reward"]).all() and serial.summary["replayed_final_reward"] is not None


def test_pusht_steps_in_process_when_a_probe_needs_the_adapter_or_frames_are_strided():
    episode, initial, profile = _case("pusht")
    seen = []
    adapter = adapter_for(episode, profile)
    try:
        strided = replay_episode(episode, profile, ReplaySettings(mode="images", tolerances=profile.tolerances,
                                                                  image_stride=2),
                                 adapter=adapter, initial_state=initial, render_workers=1)
        probed = replay_episode(episode, profile, ReplaySettings(mode="images", tolerances=profile.tolerances),
                                adapter=adapter, initial_state=initial, render_workers=1,
                                probes=[lambda t, sim: seen.append(sim.state().copy())])
    finally:
        adapter.close()
    assert not strided.step_loop["steps_in_worker"] and not probed.step_loop["steps_in_worker"]
    assert len(seen) == episode.length and not np.array_equal(seen[0], seen[-1])  # the probe saw it move


# Runs a command as a child subreaper: whatever the command leaves running (or unreaped) when it exits is
# handed to this script instead of init, deterministically, and is printed (one line each) and then waited for.
ORPHANS = """
import ctypes, os, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
with open(sys.argv[1], "wb") as log:
    run = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=log)
    code = run.wait(timeout=300)
orphans = []
for entry in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{entry}/stat") as stat:
            name, rest = stat.read().rsplit(")", 1)
    except OSError:
        continue
    if int(rest.split()[1]) == os.getpid():
        orphans.append(int(entry))
        print("orphan", entry, name.split("(", 1)[1], flush=True)
for pid in orphans:
    os.waitpid(pid, 0)
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")
def test_a_run_leaves_no_process_behind_when_it_exits(recorded_cube, tmp_path):
    """Render workers are reaped, and no helper process (multiprocessing's resource tracker, which a
    tracked shared-memory segment starts) outlives the command."""
    log = tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "replay_check", "run", "--root", str(recorded_cube), "--mode", "images",
               "--render-workers", "1", "--no-rerun", "--no-plots", "-q", "--report-dir", str(tmp_path)]
    out = subprocess.run([sys.executable, "-c", ORPHANS, str(log), *command], capture_output=True, text=True,
                         timeout=400)
    assert out.returncode == 0, log.read_text()[-2000:] + out.stderr[-2000:]
    assert out.stdout == ""


@pytest.mark.slow
def test_the_estimate_renders_in_a_worker_and_gives_the_in_process_estimate_bit_for_bit():
    """With render workers this process creates no GL context (the estimate's renders run in the workers)."""
    from replay_check.initial_state import recover_initial_state

    profile = available_profiles()["aloha-transfer-cube"]
    cube = {"cube": Pose(np.array([0.03, 0.52, 0.05]))}
    episode = aloha_episode("transfer_cube", steps=2, seed=5, render=True, env_state=False, objects=cube)
    own = adapter_for(episode, profile)
    here = recover_initial_state(episode, profile, own)
    own.close()
    adapter = adapter_for(episode, profile)
    with RenderWorkers(sim_spec(episode, profile), 2, depth=2) as workers:
        workers.ready()  # both up: the stencil rounds' renders are spread over the two
        there = recover_initial_state(episode, profile, workers.estimating(adapter))
    assert adapter.physics._contexts is None  # dm_control creates them on the first render
    adapter.close()
    assert here.objects.keys() == there.objects.keys() and here.residual == there.residual
    assert here.details == there.details and here.uncertainty.keys() == there.uncertainty.keys()
    for name, pose in here.objects.items():
        assert np.array_equal(pose.position, there.objects[name].position)
        assert np.array_equal(pose.quaternion, there.objects[name].quaternion)


def test_the_stepping_worker_catches_up_with_the_actions_taken_here_bit_for_bit():
    """A takeover at step t: the worker takes actions 0..t-2 without reads (in windows), then steps from t."""
    from replay_check.sims import SimSpec, make_adapter

    profile = available_profiles()["pusht"]
    spec = SimSpec(family="pusht", task="pusht", cameras={"top": (96, 96)}, module=profile.family_module)
    initial = InitialState(np.array([256.0, 420.0]), {"block": Pose.planar(256.0, 300.0, 0.3)}, "truth")
    actions = np.array([[256.0 + 40 * np.sin(k / 5), 420.0 - 3 * k] for k in range(90)])
    here = make_adapter(spec)
    here.restore(initial)
    expected = [here.step(action) for action in actions[:80]]
    here.close()
    workers = RenderWorkers(spec, 1, depth=4)
    try:
        handover = replay_module._Handover(workers, initial, actions, {"observation.image": ("render", "top")})
        proxy, stepping = handover.take(71, ("contacts",))  # 70 actions caught up, step 71 is the first yielded
        got = [next(stepping) for _ in range(10)]
        stepping.close()
        assert handover.from_step == 71 and proxy is workers.worker(0)
    finally:
        workers.close()
    for (mine, reads), theirs in zip(got, expected[70:80], strict=True):
        assert mine.state.tobytes() == theirs.state.tobytes() and mine.reward == theirs.reward
        assert mine.environment_state.tobytes() == theirs.environment_state.tobytes()
        assert reads["render", "top"].shape == (96, 96, 3)
    assert expected[79].environment_state.tobytes() != expected[0].environment_state.tobytes()  # the block moved
