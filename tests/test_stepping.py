"""Stepping through known actions: a worker proxy stepping ahead in batches sees and returns exactly what
one step at a time does, stops where the caller stops, and the engine's results do not change."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from replay_check.contacts import ContactTimeline
from replay_check.profiles import available_profiles
from replay_check.replay import replay_episode, sim_spec
from replay_check.sims import make_adapter
from replay_check.sims.base import InitialState
from replay_check.stacks.runner import slot_bytes
from replay_check.stepping import ReadsView, step_through
from replay_check.worker.proxy import ProxyAdapter
from tests.sim_episodes import aloha_episode, pusht_episode

READS = ("contacts", "body_poses", "snapshot")


def _proxy(spec) -> ProxyAdapter:
    return ProxyAdapter(sys.executable, spec, slot_bytes=slot_bytes(spec), isolated=False)


def _initial(episode, profile) -> InitialState:
    from replay_check.families import family_of

    objects = family_of(profile).objects_from_environment_state(episode.environment_state[0], profile.objects)
    return InitialState(episode.state[0], dict(objects), "truth")


def _assert_same(a, b) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a).__name__ == type(b).__name__
        for name in a.__dataclass_fields__:
            _assert_same(getattr(a, name), getattr(b, name))
    else:
        assert a == b, (a, b)


@pytest.mark.slow  # worker processes
def test_a_worker_stepping_ahead_returns_what_one_step_at_a_time_gives():
    profile = available_profiles()["aloha-transfer-cube"]
    episode = aloha_episode("transfer_cube", steps=40, seed=3)
    spec = sim_spec(episode, profile)
    here = make_adapter(spec)
    here.restore(_initial(episode, profile))
    expected = list(step_through(here, episode.action, READS))
    here.close()
    assert len(expected) == 40 and any(reads["contacts"] for _, reads in expected)
    with _proxy(spec) as proxy:
        for ahead in (0, 3, 32):
            proxy.restore(_initial(episode, profile))
            got = list(step_through(proxy, episode.action, READS, ahead=ahead))
            _assert_same(expected, got)


@pytest.mark.slow  # worker processes
def test_stopping_early_discards_the_steps_taken_ahead_and_frees_the_proxy():
    profile = available_profiles()["aloha-transfer-cube"]
    episode = aloha_episode("transfer_cube", steps=40, seed=1)
    with _proxy(sim_spec(episode, profile)) as proxy:
        proxy.restore(_initial(episode, profile))
        stepping = step_through(proxy, episode.action, ("contacts",), ahead=16)
        first = [next(stepping) for _ in range(3)]
        with pytest.raises(RuntimeError, match="not collected"):
            proxy.state()  # steps are in flight: a plain call now would read a state ahead of step 3
        stepping.close()
        assert proxy.state().shape == (14,) and len(first) == 3  # nothing left in flight


def test_a_probe_sees_only_the_reads_it_declares():
    view = ReadsView({"contacts": (("a", "b"),)})
    assert view.contacts() == (("a", "b"),)
    with pytest.raises(AttributeError, match="body_poses was not read"):
        view.body_poses()


class _Bodies:
    """A sink that keeps the body poses the engine hands it (the 3-D scene asks for them the same way)."""

    wants_body_poses = True

    def __init__(self):
        self.poses = []

    def on_step(self, step, row) -> None:
        self.poses.append(step.body_poses)

    def finish(self, result) -> None:
        pass


class _Undeclared:
    """A probe without `reads`: it is given the adapter itself, at its step."""

    def __init__(self):
        self.states = []

    def __call__(self, t, adapter) -> None:
        self.states.append(adapter.state())


@pytest.mark.slow  # worker processes
def test_state_mode_through_a_worker_gives_the_in_process_report_contacts_and_body_poses():
    profile = available_profiles()["aloha-transfer-cube"]
    episode = aloha_episode("transfer_cube", steps=50, seed=2)
    initial = _initial(episode, profile)
    runs = []
    with _proxy(sim_spec(episode, profile)) as proxy:
        # in process; through the worker stepping ahead; through it one step at a time (an undeclared probe)
        for adapter, undeclared in ((None, _Undeclared()), (proxy, None), (proxy, _Undeclared())):
            timeline, bodies = ContactTimeline(), _Bodies()
            result = replay_episode(episode, profile, initial_state=initial, adapter=adapter, sinks=[bodies],
                                    probes=[timeline] + ([undeclared] if undeclared else []))
            runs.append((result, timeline.to_list(), bodies.poses, undeclared))
    (base, contacts, poses, probe), *others = runs
    assert contacts and len(poses) == episode.length and len(probe.states) == episode.length
    for result, other_contacts, other_poses, _ in others:
        assert result.verdict == base.verdict and result.metrics.keys() == base.metrics.keys()
        for key, values in base.metrics.items():
            np.testing.assert_array_equal(result.metrics[key], values, err_msg=key)
        assert other_contacts == contacts
        _assert_same(poses, other_poses)
    _assert_same(probe.states, runs[2][3].states)


@pytest.mark.slow  # worker processes
def test_an_ensemble_member_through_a_worker_is_the_in_process_member():
    from replay_check.ensemble import _replay_member

    profile = available_profiles()["aloha-transfer-cube"]
    episode = aloha_episode("transfer_cube", steps=30, seed=4)
    spec, initial = sim_spec(episode, profile), _initial(episode, profile)
    here = make_adapter(spec)
    try:
        expected = _replay_member(here, initial, episode.action, seed=5)
    finally:
        here.close()
    with _proxy(spec) as proxy:
        _assert_same(expected, _replay_member(proxy, initial, episode.action, seed=5))


@pytest.mark.slow  # worker processes
def test_a_worker_dying_while_stepping_ahead_is_a_worker_error():
    import os
    import signal

    from replay_check.errors import WorkerError

    profile = available_profiles()["aloha-transfer-cube"]
    episode = aloha_episode("transfer_cube", steps=20, seed=0)
    proxy = _proxy(sim_spec(episode, profile))
    try:
        proxy.restore(_initial(episode, profile))
        stepping = step_through(proxy, np.repeat(episode.action, 50, axis=0), ("contacts",), ahead=32)
        next(stepping)
        os.kill(proxy.pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match="simulator worker died"):
            for _ in stepping:
                pass
        stepping.close()
    finally:
        proxy.close()


@pytest.mark.slow  # a worker process
def test_reads_with_arguments_are_taken_after_each_step_in_process_and_in_a_worker():
    """("render", camera) reads: the frames a stepping worker returns are the in-process ones, bit for bit."""
    episode, initial = pusht_episode(10)
    profile = available_profiles()["pusht"]
    spec = sim_spec(episode, profile)
    reads = ("contacts", ("render", "top"))
    here = make_adapter(spec)
    here.restore(initial)
    expected = list(step_through(here, episode.action, reads))
    here.close()
    frames = [values["render", "top"] for _, values in expected]
    assert frames[0].shape == (96, 96, 3) and not np.array_equal(frames[0], frames[-1])  # the agent moved
    with _proxy(spec) as proxy:
        proxy.restore(initial)
        _assert_same(expected, list(step_through(proxy, episode.action, reads, ahead=6)))
