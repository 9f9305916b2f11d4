"""Physics stacks: named sets of pinned simulator packages, built with uv into cached environments.

`installed` is this environment (replays run in process); any other stack is resolved to exact pins,
built once into the user's cache and run behind a worker process (`replay_check.worker`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from replay_check.errors import StackError
from replay_check.stacks.cache import (
    BuiltStack,
    Progress,
    ensure_built,
    entry_path,
    list_entries,
    read_marker,
    remove_entries,
    stacks_dir,
)
from replay_check.stacks.resolve import Resolution, current_python, resolve
from replay_check.stacks.spec import INSTALLED, StackSpec, definitions, resolve_name
from replay_check.stacks.uvrun import index_options

__all__ = ["BuiltStack", "StackSpec", "StackRow", "build", "definitions", "find_built", "list_stacks",
           "remove", "resolve_name", "resolution_of"]


def resolution_of(spec: StackSpec, *, python: str | None = None, offline: bool = False, refresh: bool = False,
                  root: Path | None = None) -> Resolution:
    """Exact pins for `spec` (remembered after the first resolution; `refresh` asks the index again)."""
    if spec.installed:
        raise StackError("the installed stack is this environment; it has nothing to resolve or build")
    index = index_options(offline)
    return resolve(spec, python or spec.python or current_python(), index, stacks_dir(root), refresh=refresh)


def build(spec: StackSpec, *, python: str | None = None, offline: bool = False, refresh: bool = False,
          root: Path | None = None, progress: Progress | None = None) -> BuiltStack:
    """Resolve and build `spec` (reusing a complete cache entry) and return the ready environment."""
    resolution = resolution_of(spec, python=python, offline=offline, refresh=refresh, root=root)
    return ensure_built(resolution, index_options(offline), root=root, progress=progress)


def find_built(spec: StackSpec, *, python: str | None = None, root: Path | None = None) -> BuiltStack:
    """The built environment of `spec`, without building or asking the index; StackError when absent."""
    missing = StackError(f"stack {spec.name} is not built; build it with: replay-check stacks build {spec.name}")
    try:
        resolution = resolution_of(spec, python=python, offline=True, root=root)
    except StackError:
        raise missing from None
    path = entry_path(resolution, root)
    if read_marker(path) is None:
        raise missing
    return BuiltStack(spec.name, path, resolution.pins, resolution.python)


@dataclass(frozen=True)
class StackRow:
    name: str
    description: str
    status: str  # "built" | "not built" | "half-built" | "this environment"
    path: Path | None
    pins: tuple[str, ...]


def list_stacks(root: Path | None = None) -> list[StackRow]:
    """Bundled definitions with their build state, then ad-hoc stacks that were built."""
    rows = []
    built = {(marker or {}).get("stack"): (path, marker) for path, marker in list_entries(root)}
    for name, spec in definitions().items():
        if spec.installed:
            rows.append(StackRow(name, spec.description, "this environment", None, ()))
            continue
        path, marker = built.pop(name, (None, None))
        status = "built" if marker else "not built"
        rows.append(StackRow(name, spec.description, status, path, tuple((marker or {}).get("pins", ()))))
    for path, marker in list_entries(root):
        name = (marker or {}).get("stack")
        if marker is None:
            rows.append(StackRow(path.name, "", "half-built", path, ()))
        elif name in built:
            rows.append(StackRow(name, "ad-hoc", "built", path, tuple(marker["pins"])))
    return rows


def remove(name: str, root: Path | None = None) -> list[Path]:
    """Delete the built environments of stack `name`."""
    if name == INSTALLED:
        raise StackError("the installed stack is this environment; it cannot be removed")
    return remove_entries(name, root)
