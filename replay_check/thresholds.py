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


def used_tolerance_keys(profile: Profile) -> set[str]:
    """The Tolerances fields a replay of `profile` reads: its metrics' keys plus the run-length and warn rules."""
    from replay_check.families import family_of
    from replay_check.metric_table import columns_for

    declared = family_of(profile)
    columns = columns_for(profile, object_units=declared.object_units, planar=declared.planar,
                          cameras=sorted(profile.cameras))
    return {c.metric.tolerance for c in columns if c.metric.tolerance} | {"consecutive_steps", "warn_fraction"}


def check_thresholds_for(profile: Profile, thresholds: dict[str, Any] | None,
                         overrides: dict[str, float] | None) -> None:
    """Settings that would be ignored silently: a table for a profile that does not exist, a key this
    profile never reads ([default] may hold keys for other profiles: one file serves many datasets)."""
    from replay_check.profiles import available_profiles

    known = set(used_tolerance_keys(profile)) | set(profile.group_names())
    for name in (thresholds or {}).get("profiles", {}):
        if name != profile.name and name not in available_profiles():
            raise ConfigError(f"thresholds file: [profiles.{name}] names no known profile; "
                              f"known: {', '.join(sorted(available_profiles()))}")
    specific = {f"thresholds [profiles.{profile.name}]": (thresholds or {}).get("profiles", {}).get(profile.name, {}),
                "--tolerance": overrides or {}}
    for source, values in specific.items():
        for key in values:
            if key not in known and hasattr(profile.tolerances, key):
                raise ConfigError(f"{source} {key}: profile {profile.name} does not use this tolerance; "
                                  f"it uses {', '.join(sorted(used_tolerance_keys(profile)))}")


def tolerances_for(profile: Profile, thresholds: dict[str, Any] | None = None,
                   overrides: dict[str, float] | None = None) -> Tolerances:
    """Profile defaults, then the file's [default], then its [profiles.<name>], then command-line overrides."""
    check_thresholds_for(profile, thresholds, overrides)
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
