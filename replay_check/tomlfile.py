"""Read a TOML settings file with one-line errors that name it (profiles, thresholds, nightly config)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from replay_check.errors import ConfigError, ReplayCheckError


def read_toml(path: str | Path, what: str, error: type[ReplayCheckError] = ConfigError) -> dict[str, Any]:
    """The parsed file; `error` saying "<what> <path> does not exist / is not valid TOML: ..." otherwise."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None
