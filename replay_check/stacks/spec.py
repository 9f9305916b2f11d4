"""What a stack is: a named set of simulator requirements, read from the TOML files shipped in the wheel.

Names resolve to a StackSpec: a bundled definition (`installed`, `aloha-2023`, ...), `recorded` (the stack
the dataset's profile names), or ad-hoc pins such as "mujoco==3.3.0" (the installed stack with that
override; the resolver may move the packages depending on it, preferring the installed versions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from replay_check.errors import StackError
from replay_check.tomlfile import read_toml

DEFINITIONS = Path(__file__).resolve().parent / "definitions"
INSTALLED = "installed"
RECORDED = "recorded"
# What the worker imports besides the simulator (replay_check.sims needs scipy and opencv), added to every stack.
WORKER_REQUIREMENTS = ("scipy", "opencv-python")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|>=|<=|~=|!=|<|>)\s*[^\s,;]+")


@dataclass(frozen=True)
class StackSpec:
    """Requirements to resolve. `preferences` are versions the resolver keeps unless a requirement moves them."""

    name: str
    requirements: tuple[str, ...]
    description: str = ""
    families: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    python: str | None = None  # "3.11"; None: the running interpreter's version
    overrides: tuple[str, ...] = field(default=())  # uv --override: pins that beat what packages declare
    source_builds: tuple[str, ...] = ()  # packages allowed to build from an sdist (all others: wheels only)

    def binary_args(self) -> list[str]:
        """uv flags: wheels only, except the packages this stack builds from source."""
        if not self.source_builds:
            return ["--no-build"]
        return ["--only-binary", ":all:", *(arg for p in self.source_builds for arg in ("--no-binary", p))]

    @property
    def installed(self) -> bool:
        """The running environment itself: nothing to build, replays may run in process."""
        return self.name == INSTALLED


def definitions() -> dict[str, StackSpec]:
    """Every bundled stack definition by name."""
    found = {}
    for path in sorted(DEFINITIONS.glob("*.toml")):
        spec = _load(path)
        found[spec.name] = spec
    return found


def _load(path: Path) -> StackSpec:
    from replay_check.errors import StackError as Err

    data = read_toml(path, "stack definition", Err)
    try:
        return StackSpec(
            name=str(data["name"]),
            requirements=tuple(str(r) for r in data["requirements"]),
            description=str(data.get("description", "")),
            families=tuple(data.get("families", ())),
            python=data.get("python"),
            overrides=tuple(str(r) for r in data.get("overrides", ())),
            source_builds=tuple(str(r) for r in data.get("source_builds", ())),
        )
    except KeyError as exc:
        raise StackError(f"stack definition {path} lacks required key {exc.args[0]!r}") from exc


def package_name(requirement: str) -> str:
    """The normalised distribution name of a requirement string ("dm_control>=1" -> "dm-control")."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise StackError(f"not a package requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def installed_closure(roots: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `roots` and everything they depend on (normalised name -> version)."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = [package_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist.version
        for raw in dist.requires or ():
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(package_name(req.name))
    return seen


def ad_hoc(pins: list[str]) -> StackSpec:
    """The installed stack with `pins` applied: roots unpinned, installed versions preferred."""
    for pin in pins:
        if not _PIN.match(pin):
            raise StackError(f"stack {pin!r}: expected a stack name or a pin such as 'mujoco==3.3.0'")
    base = definitions()[INSTALLED]
    pinned = {package_name(p) for p in pins}
    closure = installed_closure(base.requirements + WORKER_REQUIREMENTS)
    preferences = tuple(f"{name}=={version}" for name, version in sorted(closure.items()) if name not in pinned)
    return StackSpec(name=",".join(p.replace(" ", "") for p in pins), requirements=base.requirements + tuple(pins),
                     description=f"installed stack with {', '.join(pins)}", families=base.families,
                     preferences=preferences)


def resolve_name(name: str, recorded: str | None = None) -> StackSpec:
    """A StackSpec for a command-line stack name: bundled, `recorded` (needs the profile's stack) or pins."""
    name = name.strip()
    if name == RECORDED:
        if not recorded:
            raise StackError("--stack recorded: the dataset's profile names no recording stack ([stack] recorded)")
        name = recorded
    known = definitions()
    if name in known:
        return known[name]
    if _PIN.match(name):
        return ad_hoc([p for p in name.split(",") if p.strip()])
    raise StackError(f"unknown stack {name!r}; known: {', '.join(sorted(known))}, 'recorded' or a pin like "
                     "'mujoco==3.3.0'")


def pinned(requirement: str, version: str) -> str:
    """`name==version` for a requirement's package."""
    return f"{package_name(requirement)}=={version}"
