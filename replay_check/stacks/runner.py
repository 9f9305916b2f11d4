"""An adapter on a named stack: in process for `installed`, else a proxy to a worker in the stack's environment.

The stack is built first when needed (progress goes to `progress`). A stack whose simulator cannot even
be built there (a release pairing that resolves but does not run) raises StackBroken, which bisect
lists as broken and `run` reports as an error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay_check.errors import WorkerError
from replay_check.stacks import build, resolve_name
from replay_check.stacks.cache import Progress
from replay_check.stacks.spec import StackSpec

MIN_SLOT_BYTES = 480 * 640 * 3


class StackBroken(WorkerError):
    """The stack builds but its simulator does not start (e.g. dm-control 1.0.24 + mujoco 3.2.1)."""


@dataclass(frozen=True)
class StackInfo:
    """What a report says about the stack a replay ran on."""

    name: str
    versions: dict[str, str]  # the packages the report's `versions` lists, as installed in the stack
    pins: tuple[str, ...] = ()
    path: Path | None = None
    in_process: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "versions": dict(self.versions), "in_process": self.in_process,
                "path": None if self.path is None else str(self.path)}


def report_versions(pins: dict[str, str]) -> dict[str, str]:
    """The stack's versions of the packages a report lists (report.versions' keys: mujoco, dm_control, ...)."""
    from replay_check.provenance import versions

    keys = set(versions()) | {"mujoco", "dm_control", "gym_aloha", "gym_pusht", "pymunk", "numpy"}
    return {name.replace("-", "_"): v for name, v in sorted(pins.items()) if name.replace("-", "_") in keys}


def slot_bytes(spec: Any) -> int:
    """A frame slot large enough for every camera the adapter renders (uint8 RGB)."""
    sizes = [h * w * 3 for h, w in getattr(spec, "cameras", {}).values()]
    return max([MIN_SLOT_BYTES, *sizes])


def open_adapter(stack: str | StackSpec, spec: Any, *, recorded: str | None = None, offline: bool = False,
                 worker: bool = False, progress: Progress | None = None):
    """(adapter or None for the engine's own in-process one, StackInfo) for replaying `spec` on `stack`."""
    from replay_check.provenance import versions
    from replay_check.worker.proxy import ProxyAdapter

    stack_spec = stack if isinstance(stack, StackSpec) else resolve_name(stack, recorded=recorded)
    if stack_spec.installed:
        info = StackInfo(stack_spec.name, versions(), in_process=not worker)
        if not worker:
            return None, info
        return ProxyAdapter(sys.executable, spec, stack=stack_spec.name, slot_bytes=slot_bytes(spec),
                            isolated=False), info
    built = build(stack_spec, offline=offline, progress=progress)
    info = StackInfo(stack_spec.name, report_versions(built.versions), built.pins, built.path, in_process=False)
    try:
        adapter = ProxyAdapter(built.python, spec, stack=stack_spec.name, slot_bytes=slot_bytes(spec))
    except WorkerError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the simulator raised while building the task
        raise StackBroken(f"stack {stack_spec.name} is broken: its simulator does not start "
                          f"({str(exc).splitlines()[0][:300]})") from None
    return adapter, info
