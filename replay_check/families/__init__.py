"""The simulator-family registry: one `Family` declaration holds everything family-specific.

Code outside a family's own modules asks the registry (`family(name)`) instead of naming a family.
A declaration is cheap to import: its callables import the adapter, estimator, policy and overlay
modules when called, so a simulator worker process (numpy, scipy, opencv and the simulator only)
can import the registry. Adding a family is one module calling `register(Family(...))` plus a
profile TOML whose `adapter` is the family name (and `family_module` the module, when it lives
outside this package).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from replay_check.errors import ProfileError
from replay_check.sims.base import InitialState, Pose, SimAdapter, SimSpec

# Built-in families, imported on first lookup.
BUILTIN = {"aloha": "replay_check.families.aloha", "pusht": "replay_check.families.pusht"}

# frame -> {object: Pose | None}; None where the object is not seen in that frame.
ObjectMeasure = Callable[[np.ndarray], "dict[str, Pose | None]"]


def default_recorded_success(reward: np.ndarray | None, success: np.ndarray | None,
                             declared: bool | None) -> bool | None:
    """What a dataset says about success: any next.success flag, else the profile's declaration."""
    del reward
    if success is not None:
        return bool(success.any())
    return declared


@dataclass(frozen=True)
class Family:
    """All that is specific to one simulator family.

    - `make_adapter(spec)`: the adapter for a SimSpec (physics overrides applied).
    - `objects_from_environment_state(row, object_names)`: object poses from one recorded row.
    - `estimate(frame0, robot_state0, adapter, sim_camera, profile)`: the InitialState from frame 0.
    - `meter(adapter, sim_camera, height, width, profile)`: a per-frame ObjectMeasure; `meter_symmetric`
      says whether replayed frames are measured too and compared measurement-to-measurement (the
      measurement is biased) or the measurement is compared with the simulator's pose.
    - `object_units` ("m" | "px") and `planar` (objects have a planar angle worth comparing).
    - `recorded_success(reward, success, declared)`: the recording's success from its columns.
    - `overlay(height, width)`: a Rerun 2-D overlay factory for camera images (None: no overlay).
    - `scene(task, object_names, cameras)`: the Rerun scene recorder of a replay (replay_check.scene3d;
      `cameras` maps dataset camera keys to simulator cameras); None: no scene.
    - `record_envs`: `record --env` name -> zero-argument factory of a `replay_check.policies.EnvSpec`.
    - `physics_keys`: the SimSpec.physics overrides the adapter understands.
    - `render_workers`: whether image mode renders in worker processes by default (on >= 2 cores).
    - `step_in_worker`: whether a single render worker also steps the physics, running ahead of the
      comparison and rendering each step after it, so the main process only decodes, measures, compares
      and logs (for cheap frames like PushT's 2-D drawing, where one worker's physics and rendering
      together cost about what the main process's side of a step costs). Otherwise workers render
      snapshots the main process sends while it steps physics itself.
    """

    name: str
    make_adapter: Callable[[SimSpec], SimAdapter]
    objects_from_environment_state: Callable[[np.ndarray, tuple[str, ...]], dict[str, Pose]]
    object_units: str = "m"
    planar: bool = False
    estimate: Callable[..., InitialState] | None = None
    meter: Callable[..., ObjectMeasure] | None = None
    meter_symmetric: bool = False
    recorded_success: Callable[[np.ndarray | None, np.ndarray | None, bool | None], bool | None] = (
        default_recorded_success
    )
    overlay: Callable[[int, int], Callable[..., Any]] | None = None
    scene: Callable[..., Any] | None = None
    record_envs: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    physics_keys: tuple[str, ...] = ()
    render_workers: bool = True
    step_in_worker: bool = False
    module: str | None = None  # where the declaration lives (set by `register`)


_REGISTRY: dict[str, Family] = {}


def register(declaration: Family) -> Family:
    """Add (or replace) a family; returns it so a module can write `FAMILY = register(Family(...))`."""
    if declaration.object_units not in ("m", "px"):
        raise ProfileError(f"family {declaration.name!r}: object_units {declaration.object_units!r}; "
                           "expected 'm' or 'px'")
    if declaration.module is None:
        module = getattr(declaration.make_adapter, "__module__", None)
        declaration = replace(declaration, module=module)
    _REGISTRY[declaration.name] = declaration
    return declaration


def unregister(name: str) -> None:
    """Forget a family (tests that register their own)."""
    _REGISTRY.pop(name, None)


def family(name: str, module: str | None = None) -> Family:
    """The family declared as `name`, importing its module (built-in, or `module`) on first use."""
    if name not in _REGISTRY:
        source = module or BUILTIN.get(name)
        if source:
            try:
                importlib.import_module(source)
            except ImportError as exc:
                raise ProfileError(f"simulator family {name!r}: cannot import {source!r} ({exc})") from exc
    if name not in _REGISTRY:
        raise ProfileError(f"unknown simulator family {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Every family known now (built-in ones even before they were imported)."""
    return sorted({*BUILTIN, *_REGISTRY})


def all_families() -> list[Family]:
    """Every built-in and registered family, importing the built-in declarations."""
    return [family(name) for name in names()]


def record_env(env: str) -> Callable[[], Any] | None:
    """The EnvSpec factory of a `record --env` name, searched over every family."""
    for declared in all_families():
        if env in declared.record_envs:
            return declared.record_envs[env]
    return None


def record_env_names() -> list[str]:
    return sorted(name for declared in all_families() for name in declared.record_envs)


def family_of(profile: Any) -> Family:
    """The family a profile replays with (its `adapter` key, imported from `family_module` if given)."""
    return family(profile.adapter, getattr(profile, "family_module", None))
