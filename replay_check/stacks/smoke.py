"""Smoke-testing a built stack: a stack can resolve and still not run (dm-control 1.0.24 + mujoco 3.2.1 fails
with `'MjModel' object has no attribute 'eq_objtype'`), so import, build each family's task, step once.
"""

from __future__ import annotations

import numpy as np

from replay_check.errors import ReplayCheckError
from replay_check.stacks.cache import BuiltStack


def smoke_test(stack: BuiltStack, families: tuple[str, ...]) -> dict[str, str | None]:
    """family -> None when its first bundled profile's task builds and steps on `stack`, else the problem."""
    from replay_check.profiles import available_profiles
    from replay_check.sims.base import SimSpec
    from replay_check.worker.proxy import ProxyAdapter

    outcome: dict[str, str | None] = {}
    for family in families:
        profile = next((p for p in available_profiles().values() if p.adapter == family), None)
        if profile is None:
            continue
        try:
            with ProxyAdapter(stack.python, SimSpec(family=profile.adapter, task=profile.task),
                              stack=stack.name) as adapter:
                adapter.step(np.zeros(profile.action_dim or 2))
            outcome[family] = None
        except (ReplayCheckError, Exception) as exc:  # noqa: BLE001 - any failure means "broken"
            outcome[family] = str(exc).splitlines()[0][:300]
    return outcome
