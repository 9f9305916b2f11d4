"""Where a replay's outcome comes from: package versions, the tool version and the settings hash.

Reports carry them and `validate` compares them to decide whether a report on disk can be reused, so
they are computed in one place (and package versions read once per process).
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata

from replay_check.steps import ReplaySettings

# The packages that decide a replay's outcome.
PACKAGES = ("mujoco", "dm-control", "gym-aloha", "gym-pusht", "pymunk", "numpy", "rerun-sdk", "replay-check")
# The simulator stack a replay ran on when none is named (issue 9 adds pinned stacks).
STACK_INSTALLED = "installed"


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    found = []
    for package in PACKAGES:
        try:
            found.append((package.replace("-", "_"), metadata.version(package)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def versions() -> dict[str, str]:
    """Installed versions of the packages that decide a replay's outcome (absent ones omitted)."""
    return dict(_installed_versions())


def tool_version() -> str:
    from replay_check import __version__

    return __version__


def settings_hash(settings: ReplaySettings, profile_name: str) -> str:
    """A stable 16-hex-digit sha256 prefix of the profile and settings, so resumed batches can tell."""
    canonical = {
        "profile": profile_name,
        "mode": settings.mode,
        "image_stride": int(settings.image_stride),
        "tolerances": settings.tolerances.as_dict(),
    }
    for key in ("ensemble", "resync", "strict"):  # only when set, so older reports keep their hash
        value = getattr(settings, key, None)
        if value not in (None, False):
            canonical[key] = value
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
