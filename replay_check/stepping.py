"""Stepping an adapter through actions known in advance, with the reads each step needs taken right after it.

A replay knows every action before it starts, so an adapter in another process (a stack's worker,
`worker.proxy.ProxyAdapter.step_through`) can be sent several steps per message and run a bounded
number of steps ahead instead of waiting for one round trip per step and per read. In process the
steps are taken one by one as the caller asks for them, exactly as `adapter.step` would be called.
Either way the adapter sees the same calls in the same order: results are identical.

`reads` name adapter methods taken after each step: a name is called without arguments (e.g.
"contacts", "body_poses"), a tuple (name, *args) with those (("render", "top"): image mode's frames,
when the worker steps ahead and renders); each value is keyed by its read. They must not change the
simulation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from replay_check.sims.base import SimObservation

Read = str | tuple  # a method name, or (method name, *arguments)
Step = tuple[SimObservation, dict[Read, Any]]


def take_read(adapter: Any, read: Read) -> Any:
    """The value of one read: `adapter.name()` or `adapter.name(*args)`."""
    if isinstance(read, str):
        return getattr(adapter, read)()
    name, *args = read
    return getattr(adapter, name)(*args)


def step_through(adapter: Any, actions: Sequence[np.ndarray] | np.ndarray, reads: Sequence[Read] = (), *,
                 ahead: int = 0) -> Iterator[Step]:
    """(observation, reads) after each action, in order.

    `ahead` is how many steps an adapter may take before the caller asks for them (0: none, so the
    caller may call the adapter between steps; a worker proxy still answers a step and its reads in
    one round trip). Adapters that can use it define `step_through` themselves; closing the iterator
    early (the caller stopped on an unstable step) discards steps taken ahead.
    """
    own = getattr(adapter, "step_through", None)
    if own is not None:
        return own(actions, tuple(reads), ahead=ahead)
    return _in_process(adapter, actions, tuple(reads))


def _in_process(adapter: Any, actions, reads: tuple[Read, ...]) -> Iterator[Step]:
    for action in actions:
        observation = adapter.step(action)
        yield observation, {read: take_read(adapter, read) for read in reads}


class ReadsView:
    """What a probe sees of the adapter after one step: the reads taken right after it, as the same calls."""

    def __init__(self, values: dict[str, Any]):
        self._values = values

    def __getattr__(self, name: str):
        values = self.__dict__["_values"]
        if name not in values:
            raise AttributeError(f"{name} was not read after this step (a probe declares what it calls in `reads`)")
        value = values[name]
        return lambda: value
