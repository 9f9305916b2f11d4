"""Resolving a StackSpec to exact pins with `uv pip compile`, wheels only, for a given Python version.

Wheels only, because simulators built from source are not the release being tested (and mujoco's sdist
needs a C++ toolchain); so a pin without a wheel for the target interpreter fails here, with its name.
Resolutions are remembered per spec, Python and index, so a built stack is found again offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from replay_check.errors import StackError
from replay_check.stacks.spec import WORKER_REQUIREMENTS, StackSpec
from replay_check.stacks.uvrun import IndexOptions, run_uv


@dataclass(frozen=True)
class Resolution:
    """Exact pins for a spec on one Python minor version."""

    spec: StackSpec
    python: str  # "3.11"
    pins: tuple[str, ...]  # sorted "name==version"

    @property
    def versions(self) -> dict[str, str]:
        return dict(pin.split("==", 1) for pin in self.pins)

    @property
    def key(self) -> str:
        """The cache key of the environment these pins build (the pins, the interpreter, the platform)."""
        canonical = json.dumps([self.python, sys.implementation.name, sys.platform, os.uname().machine,
                                list(self.pins)])
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def spec_key(spec: StackSpec, python: str, index: IndexOptions) -> str:
    canonical = json.dumps([spec.requirements + WORKER_REQUIREMENTS, spec.overrides, spec.source_builds,
                            spec.preferences, python,
                            [a for a in index.args if a != "--offline"]])
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def resolve(spec: StackSpec, python: str, index: IndexOptions, cache_dir: Path, *, refresh: bool = False) -> Resolution:
    """The pins of `spec` for Python `python`: remembered from an earlier resolution, else uv's answer."""
    memo = cache_dir / "resolved" / f"{spec_key(spec, python, index)}.json"
    if memo.is_file() and not refresh:
        try:
            return Resolution(spec, python, tuple(json.loads(memo.read_text())["pins"]))
        except (ValueError, KeyError):
            memo.unlink(missing_ok=True)
    pins = _compile(spec, python, index)
    memo.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=memo.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump({"stack": spec.name, "python": python, "pins": list(pins)}, handle)
    os.replace(tmp, memo)
    return Resolution(spec, python, pins)


def _compile(spec: StackSpec, python: str, index: IndexOptions) -> tuple[str, ...]:
    with tempfile.TemporaryDirectory(prefix="replay-check-resolve-") as tmp:
        requirements = Path(tmp) / "requirements.in"
        requirements.write_text("\n".join(spec.requirements + WORKER_REQUIREMENTS) + "\n")
        output = Path(tmp) / "requirements.txt"
        # uv keeps the versions already in the output file unless a requirement forces a move.
        output.write_text("\n".join(spec.preferences) + "\n")
        args = ["pip", "compile", str(requirements), "-o", str(output), "--python-version", python,
                *spec.binary_args(), "--no-header", "--no-annotate", "--quiet"]
        if spec.overrides:
            overrides = Path(tmp) / "overrides.txt"
            overrides.write_text("\n".join(spec.overrides) + "\n")
            args += ["--override", str(overrides)]
        try:
            run_uv(args, index, what=f"stack {spec.name}")
        except StackError as exc:
            raise _explain(spec, python, str(exc), index) from None
        lines = output.read_text().splitlines()
    pins = sorted(line.split(";")[0].strip() for line in lines if "==" in line and not line.lstrip().startswith("#"))
    return tuple(pins)


def _explain(spec: StackSpec, python: str, message: str, index: IndexOptions) -> StackError:
    """Name the pin and the interpreter when the cause is a missing wheel; say 'offline' when it is that."""
    reason = message.split(": ", 1)[-1]
    wheel = re.search(r"([A-Za-z0-9._-]+)==([^\s,]+) has no (?:usable )?wheels", reason) or re.search(
        r"([A-Za-z0-9._-]+)==([^\s,]+) has no wheels with a matching Python", reason)
    if wheel:
        name, version = wheel.group(1), wheel.group(2)
        return StackError(f"stack {spec.name}: {name}=={version} has no wheel for CPython {python} on this platform; "
                          f"choose another interpreter (--python) or another {name} release")
    if index.offline:
        return StackError(f"stack {spec.name} is not built and cannot be resolved offline (uv: {reason}); "
                          f"build it once online: replay-check stacks build {spec.name}")
    return StackError(f"stack {spec.name}: requirements do not resolve ({', '.join(spec.requirements)}): {reason}")
