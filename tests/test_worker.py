"""The simulator worker and its proxy: same results as in process, crashes, orphans, blow-ups, real stacks."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner

from replay_check.errors import EXIT_OPERATIONAL, WorkerError
from replay_check.pipeline import RunRequest, prepare, run_episode
from replay_check.profiles import available_profiles
from replay_check.replay import replay_episode, sim_spec
from replay_check.sims.base import SimSpec
from replay_check.stacks.runner import slot_bytes
from replay_check.worker.proxy import ProxyAdapter
from tests.sim_episodes import aloha_episode

FORBIDDEN = {"pyarrow", "av", "rerun", "matplotlib", "huggingface_hub", "click", "tqdm", "torch", "pandas"}
ALLOWED_OWN = ("replay_check._gl", "replay_check.errors", "replay_check.sims", "replay_check.families",
               "replay_check.policies", "replay_check.worker")


def local_proxy(spec: SimSpec) -> ProxyAdapter:
    return ProxyAdapter(sys.executable, spec, slot_bytes=slot_bytes(spec), isolated=False)


@pytest.mark.slow
def test_proxy_gives_the_same_result_as_in_process(recorded_cube):
    episode, profile, settings = prepare(RunRequest(root=recorded_cube, mode="images"))
    here = replay_episode(episode, profile, settings)
    with local_proxy(sim_spec(episode, profile)) as proxy:
        there = replay_episode(episode, profile, settings, adapter=proxy)
    assert there.verdict == here.verdict
    assert here.metrics.keys() == there.metrics.keys() and "image/observation.images.top/psnr" in here.metrics
    for key, values in here.metrics.items():
        np.testing.assert_array_equal(there.metrics[key], values, err_msg=key)


def test_adapter_errors_come_back_as_themselves_and_the_worker_survives():
    with local_proxy(SimSpec("aloha", "insertion")) as proxy:
        with pytest.raises(ValueError, match=r"Expected \(14,\)"):
            proxy.set_robot_state(np.zeros(3))
        assert proxy.observe().state.shape == (14,)
        with pytest.raises(AttributeError, match="no attribute 'physics'"):
            proxy.physics  # noqa: B018 - only protocol methods and plain attributes cross


def test_a_worker_crash_is_a_worker_error_naming_the_stack():
    proxy = local_proxy(SimSpec("aloha", "insertion"))
    os.kill(proxy.pid, signal.SIGKILL)
    with pytest.raises(WorkerError, match=r"stack installed: simulator worker died \(signal SIGKILL\) during step"):
        proxy.step(np.zeros(14))
    assert WorkerError.exit_code == EXIT_OPERATIONAL
    proxy.close()


def test_the_worker_exits_when_its_parent_dies(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from replay_check.sims.base import SimSpec
        from replay_check.worker.proxy import ProxyAdapter
        proxy = ProxyAdapter(sys.executable, SimSpec("aloha", "insertion"), isolated=False)
        print(proxy.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


def test_a_blow_up_in_the_worker_is_still_unstable():
    profile = available_profiles()["aloha-transfer-cube"]
    episode = aloha_episode("transfer_cube", steps=30, seed=0)
    wild = dataclasses.replace(episode, action=np.full_like(episode.action, 1e6))
    spec = dataclasses.replace(sim_spec(wild, profile), physics={"timestep": 0.02})  # 1 substep: explodes
    with local_proxy(spec) as proxy:
        result = replay_episode(wild, profile, adapter=proxy)
    assert result.verdict.status == "fail"
    assert any("unstable" in reason for reason in result.verdict.reasons), result.verdict.reasons


@pytest.mark.slow
def test_replay_on_a_real_older_stack(built_aloha_2023, monkeypatch, tmp_path):
    """aloha-2023 (mujoco 2.3.7, numpy 1.x) from the package index: the sample replays there, estimation included."""
    root, built = built_aloha_2023
    monkeypatch.setenv("REPLAY_CHECK_CACHE_DIR", str(root))
    outcome = run_episode(RunRequest(mode="state", stack="aloha-2023", report_dir=tmp_path, rerun=None, plots=False))
    result = outcome.result
    assert result.versions["mujoco"] == "2.3.7" and result.versions["numpy"].startswith("1.")
    assert result.stack["name"] == "aloha-2023" and not result.stack["in_process"]
    assert result.initial_state.method == "estimated"  # rendered on mujoco 2.3.7 through the proxy
    assert result.verdict.status in ("pass", "warn", "fail") and result.summary["replayed_success"] is not None
    folder = outcome.report_dir.parent.name
    assert folder.startswith("aloha_insertion_sample") and folder.endswith("@aloha-2023")
    with ProxyAdapter(built.python, SimSpec("aloha", "insertion"), stack="aloha-2023") as proxy:
        modules = proxy.modules()
    top = {name.split(".")[0] for name in modules} - set(sys.stdlib_module_names)
    assert not top & FORBIDDEN, top & FORBIDDEN
    own = [m for m in modules if m.startswith("replay_check.")]
    assert all(m.startswith(ALLOWED_OWN) for m in own), own


@pytest.mark.slow
def test_run_compares_two_stacks(built_aloha_2023, monkeypatch, tmp_path):
    from replay_check.cli import cli

    root, _ = built_aloha_2023
    monkeypatch.setenv("REPLAY_CHECK_CACHE_DIR", str(root))
    result = CliRunner().invoke(cli, ["run", "--mode", "state", "--stack", "installed", "--stack", "aloha-2023",
                                      "--no-rerun", "--no-plots", "-q", "--report-dir", str(tmp_path)])
    assert result.exit_code in (0, 1), result.output
    assert "conclusion: " in result.output and "aloha-2023 (mujoco 2.3.7)" in result.output
    import json

    (on_old,) = tmp_path.glob("aloha_insertion_sample*@aloha-2023/episode_000000/report.json")
    (here,) = [p for p in tmp_path.glob("aloha_insertion_sample*/episode_000000/report.json") if "@" not in str(p)]
    report, first = json.loads(on_old.read_text()), json.loads(here.read_text())
    assert report["settings"]["stack"] == "aloha-2023" and first["settings"]["stack"] == "installed"
    assert report["stacks"] == first["stacks"] and [s["name"] for s in first["stacks"]["stacks"]] == [
        "installed", "aloha-2023"]
    assert first["stacks"]["stacks"][1]["versions"]["mujoco"] == "2.3.7"
    assert "parts_from" in first["stacks"]["stacks"][1] and first["stacks"]["conclusion"].startswith("reproduces")


def test_a_fail_on_this_environment_points_at_the_recording_stack(recorded_cube, tmp_path):
    from replay_check.cli import cli

    result = CliRunner().invoke(cli, ["run", "--root", str(recorded_cube), "--mode", "state", "--tolerance",
                                      "arm_rad=0.0", "--tolerance", "gripper=0.0", "--no-rerun", "--no-plots", "-q",
                                      "--report-dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "recorded on stack aloha-2023" in result.output and "--stack recorded" in result.output


@pytest.mark.slow
def test_validate_gives_one_summary_per_stack(built_aloha_2023, recorded_cube, monkeypatch, tmp_path):
    import json

    from replay_check.cli import cli

    root, _ = built_aloha_2023
    monkeypatch.setenv("REPLAY_CHECK_CACHE_DIR", str(root))
    result = CliRunner().invoke(cli, ["validate", "--root", str(recorded_cube), "--mode", "state", "--workers", "1",
                                      "--stack", "installed", "--stack", "aloha-2023", "--no-plots", "-q",
                                      "--report-dir", str(tmp_path)])
    assert result.exit_code in (0, 1), result.output
    assert "on stack installed: 1 episodes" in result.output and "on stack aloha-2023: 1 episodes" in result.output
    (old,) = tmp_path.glob("*@aloha-2023/summary.json")
    (here,) = [p for p in tmp_path.glob("*/summary.json") if "@" not in p.parent.name]
    assert json.loads(old.read_text())["settings"]["stack"] == "aloha-2023"
    assert json.loads(here.read_text())["settings"]["stack"] == "installed"
    (report,) = old.parent.glob("episode_*/report.json")
    assert json.loads(report.read_text())["versions"]["mujoco"] == "2.3.7"
