"""Declarative environment profiles (envs/*.toml): which simulator replays which dataset.

A user supports a new dataset variant by adding a TOML file, not code. Profiles ship inside the
wheel as `replay_check/envs/`; in a source checkout they are read from the repository's `envs/`.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from replay_check.dataset.episode import DatasetMeta
from replay_check.errors import ConfigError, ProfileError
from replay_check.tomlfile import read_toml


@dataclass(frozen=True)
class Tolerances:
    """Per-metric limits; a metric over its limit for `consecutive_steps` steps is a divergence."""

    arm_rad: float = 0.05
    gripper: float = 0.1
    object_mm: float = 15.0
    image_psnr_db: float = 20.0
    agent_px: float = 5.0
    block_px: float = 5.0
    block_deg: float = 5.0
    consecutive_steps: int = 5
    # A divergence starting after this fraction of the episode is a warning, not a failure.
    warn_fraction: float = 0.5
    # Limits for single divergence groups (a state group, "object/<name>", "image/<camera>"), in the
    # unit of that group's metric; they win over the kind-wide keys above.
    groups: tuple[tuple[str, float], ...] = ()

    def override(self, values: dict[str, Any], source: str = "options", group_names: Iterable[str] = ()
                 ) -> Tolerances:
        """A copy with `values` applied; unknown keys and wrong types are a ConfigError naming them.

        Keys in `group_names` set a per-group limit; a per-group limit also accepts a nested table
        (`[tolerances.groups]` in TOML).
        """
        values = dict(values)
        nested = values.pop("groups", {})
        if not isinstance(nested, dict):
            raise ConfigError(f"{source}: tolerance 'groups' must be a table of group = limit")
        known = {f.name: f.type for f in fields(self) if f.name != "groups"}
        allowed = set(group_names)
        per_group = dict(self.groups)
        clean: dict[str, Any] = {}
        for key, value in [*values.items(), *nested.items()]:
            if key in allowed and key not in known:
                per_group[key] = _number(key, value, float, source)
                continue
            if key not in known:
                extra = f"; groups: {', '.join(sorted(allowed))}" if allowed else ""
                raise ConfigError(f"{source}: unknown tolerance {key!r}; known: {', '.join(sorted(known))}{extra}")
            want = int if known[key] in ("int", int) else float
            wrong_type = not isinstance(value, int | float) or (want is int and not isinstance(value, int))
            if isinstance(value, bool) or wrong_type:
                kind = "an integer" if want is int else "a number"
                raise ConfigError(f"{source}: tolerance {key!r} must be {kind}, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{source}: tolerance {key!r} must be a finite number >= 0, got {value!r}")
            if key == "consecutive_steps" and value < 1:
                raise ConfigError(f"{source}: tolerance 'consecutive_steps' must be >= 1, got {value!r}")
            if key == "warn_fraction" and value > 1:
                raise ConfigError(f"{source}: tolerance 'warn_fraction' must be within [0, 1], got {value!r}")
            clean[key] = want(value)
        return replace(self, **clean, groups=tuple(sorted(per_group.items())))

    def as_dict(self) -> dict[str, Any]:
        """The limits as JSON-ready values; `groups` only when some are set (keeps older hashes valid)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "groups"}
        if self.groups:
            out["groups"] = dict(self.groups)
        return out


def _number(key: str, value: Any, want: type, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{source}: tolerance {key!r} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{source}: tolerance {key!r} must be a finite number >= 0, got {value!r}")
    return want(value)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    adapter: str
    task: str
    env_id: str
    fps: float
    objects: tuple[str, ...]
    cameras: dict[str, str]
    state_groups: dict[str, tuple[int, int]]
    match: dict[str, Any]
    tolerances: Tolerances
    state_kinds: dict[str, str] = field(default_factory=dict)  # group -> "arm" | "gripper" | "agent"
    object_colors: dict[str, str] = field(default_factory=dict)
    estimate_from: str | None = None
    recorded_success_default: bool | None = None
    family_module: str | None = None  # module declaring the `adapter` family, when outside the package
    recorded_stack: str | None = None  # the stack the family's public datasets were recorded on ([stack] recorded)
    path: Path | None = None

    def group_names(self) -> list[str]:
        """Every divergence group name a per-group tolerance may use."""
        objects = [f"{kind}/{name}" for name in self.objects for kind in ("object", "object_angle")]
        return [*self.state_groups, *objects, *(f"image/{camera}" for camera in self.cameras)]

    @property
    def state_dim(self) -> int:
        return int(self.match.get("state_dim", 0))

    @property
    def action_dim(self) -> int:
        return int(self.match.get("action_dim", 0))


def profile_dirs() -> list[Path]:
    """Where bundled profiles live: inside the installed package, else the source checkout's envs/."""
    here = Path(__file__).resolve().parent
    return [d for d in (here / "envs", here.parent / "envs") if d.is_dir()]


def load_profile(path: Path) -> Profile:
    data = read_toml(path, "profile", ProfileError)
    try:
        groups = {k: (int(v[0]), int(v[1])) for k, v in data.get("state", {}).items()}
        kinds = dict(data.get("state_kinds", {}))
        _check_kinds(path, groups, kinds)
        objects = tuple(data.get("objects", ()))
        names = [*groups, *(f"{kind}/{name}" for name in objects for kind in ("object", "object_angle")),
                 *(f"image/{camera}" for camera in data.get("cameras", {}))]
        tol = Tolerances().override(data.get("tolerances", {}), source=str(path), group_names=names)
        return Profile(
            name=data["name"],
            description=data.get("description", ""),
            adapter=data["adapter"],
            task=data["task"],
            env_id=data.get("env_id", ""),
            fps=float(data["fps"]),
            objects=objects,
            cameras=dict(data.get("cameras", {})),
            state_groups=groups,
            match=dict(data.get("match", {})),
            tolerances=tol,
            state_kinds=kinds,
            object_colors=dict(data.get("object_colors", {})),
            estimate_from=data.get("initial_state", {}).get("estimate_from"),
            recorded_success_default=data.get("success", {}).get("recorded_default"),
            family_module=data.get("family_module"),
            recorded_stack=data.get("stack", {}).get("recorded"),
            path=Path(path),
        )
    except KeyError as exc:
        raise ProfileError(f"profile {path} lacks required key {exc.args[0]!r}") from exc


def _check_kinds(path: Path, groups: dict[str, tuple[int, int]], kinds: dict[str, str]) -> None:
    """Every state group declares its kind (which sets its unit and tolerance key)."""
    from replay_check.metric_table import STATE_KINDS

    for group in groups:
        kind = kinds.get(group)
        if kind not in STATE_KINDS:
            got = "no kind" if kind is None else f"kind {kind!r}"
            raise ProfileError(f"profile {path}: state group {group!r} has {got} in [state_kinds]; "
                               f"expected one of {', '.join(STATE_KINDS)}")


def available_profiles() -> dict[str, Profile]:
    """All bundled profiles by name (the first directory wins on a name clash)."""
    found: dict[str, Profile] = {}
    for directory in profile_dirs():
        for path in sorted(directory.glob("*.toml")):
            profile = load_profile(path)
            found.setdefault(profile.name, profile)
    return found


def match_score(profile: Profile, meta: DatasetMeta) -> int:
    """How well a dataset fits a profile; 0 means it cannot be this profile."""
    m = profile.match
    feats = meta.features
    for key, dim in (("observation.state", m.get("state_dim")), ("action", m.get("action_dim"))):
        if dim is not None and (key not in feats or feats[key].shape[-1:] != (dim,)):
            return 0
    robot_type = None if meta.robot_type in (None, "", "unknown") else meta.robot_type  # lerobot's "no information"
    if m.get("robot_type") and robot_type and robot_type not in m["robot_type"]:
        return 0
    score = 1
    if robot_type and robot_type in m.get("robot_type", ()):
        score += 2
    if meta.repo_id and any(fnmatch.fnmatch(meta.repo_id.lower(), p) for p in m.get("repo_id", ())):
        score += 4
    text = " ".join(meta.tasks).lower()
    score += 3 * sum(1 for needle in m.get("task_text", ()) if needle.lower() in text)
    if meta.fps == profile.fps:
        score += 1
    return score


def select_profile(meta: DatasetMeta, name_or_path: str | None = None) -> Profile:
    """The profile named (or the TOML file given), else the best match for the dataset's metadata."""
    profiles = available_profiles()
    if name_or_path:
        if name_or_path.endswith(".toml"):
            return load_profile(Path(name_or_path))
        if name_or_path not in profiles:
            raise ProfileError(f"unknown profile {name_or_path!r}; available: {', '.join(sorted(profiles))}")
        return profiles[name_or_path]
    scored = sorted(((match_score(p, meta), p.name) for p in profiles.values()), reverse=True)
    if not scored or scored[0][0] == 0:
        raise ProfileError(
            f"dataset {meta.name} (robot_type={meta.robot_type!r}) matches no environment profile; "
            f"available: {', '.join(sorted(profiles))} (choose one with --profile)"
        )
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise ProfileError(
            f"dataset {meta.name} matches profiles {scored[0][1]!r} and {scored[1][1]!r} equally; "
            "choose one with --profile"
        )
    return profiles[scored[0][1]]
