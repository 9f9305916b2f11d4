"""Tolerance overrides from a TOML file and from `--tolerance KEY=VALUE` options.

File shape (every key optional; unknown keys are an error naming them):

    [default]                 # applies to every profile
    consecutive_steps = 5
    [profiles.aloha-insertion]
    arm_rad = 0.03
    object_mm = 10.0
    left_gripper = 0.2        # one state group, object ("object/peg") or camera ("image/<key>")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replay_check.errors import ConfigError
from replay_check.profiles import Profile, Tolerances
from replay_check.tomlfile import read_toml


def load_thresholds(path: str | Path) -> dict[str, Any]:
    """Parse and validate a thresholds file (types are checked against Tolerances on load)."""
    path = Path(path)
    data = read_toml(path, "thresholds file")
    unknown = set(data) - {"default", "profiles"}
    if unknown:
        raise ConfigError(
            f"thresholds file {path}: unknown section(s) {sorted(unknown)}; expected [default], [profiles.<name>]"
        )
    Tolerances().override(data.get("default", {}), source=f"{path} [default]")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"thresholds file {path}: [profiles] must be a table of profile tables")
    for name, values in profiles.items():
        if not isinstance(values, dict):
            raise ConfigError(f"thresholds file {path}: profiles.{name} must be a table")
        Tolerances().override(values, source=f"{path} [profiles.{name}]", group_names=_group_names(name))
    return data


def _group_names(profile_name: str) -> list[str]:
    """The per-group keys a [profiles.<name>] section may use (none for an unknown profile)."""
    from replay_check.profiles import available_profiles

    profile = available_profiles().get(profile_name)
    return profile.group_names() if profile else []


def parse_tolerance_options(items: tuple[str, ...] | list[str]) -> dict[str, float]:
    """`KEY=VALUE` strings from the command line -> a dict of numbers."""
    values: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--tolerance expects KEY=VALUE, got {item!r}")
        try:
            number = float(raw)
        except ValueError:
            raise ConfigError(f"--tolerance {key}: {raw!r} is not a number") from None
        values[key.strip()] = int(number) if key.strip() == "consecutive_steps" and number.is_integer() else number
    return values


def tolerances_for(profile: Profile, thresholds: dict[str, Any] | None = None,
                   overrides: dict[str, float] | None = None) -> Tolerances:
    """Profile defaults, then the file's [default], then its [profiles.<name>], then command-line overrides."""
    tolerances = profile.tolerances
    if thresholds:
        tolerances = tolerances.override(thresholds.get("default", {}), source="thresholds [default]")
        tolerances = tolerances.override(
            thresholds.get("profiles", {}).get(profile.name, {}), source=f"thresholds [profiles.{profile.name}]",
            group_names=profile.group_names(),
        )
    if overrides:
        tolerances = tolerances.override(overrides, source="--tolerance", group_names=profile.group_names())
    return tolerances
