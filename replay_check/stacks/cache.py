"""Built stacks on disk: one virtual environment per resolved pin set, in the user's cache folder.

An entry is built in a temporary folder beside its final place and renamed into it, and a marker file
is written last; an entry without a valid marker is half-built and is rebuilt, never used. A file lock
serialises builders of one entry (two validate workers may ask for the same stack at once). The
project's own sources are copied into the environment without dependencies and re-copied whenever
their content changes, so a stack never runs stale replay-check code.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import replay_check
from replay_check.errors import StackError
from replay_check.stacks.resolve import Resolution
from replay_check.stacks.uvrun import IndexOptions, run_uv

MARKER = "replay-check-stack.json"
SOURCE_MARKER = ".source-identity"
Progress = Callable[[str], None]


def cache_root() -> Path:
    """$REPLAY_CHECK_CACHE_DIR, else $XDG_CACHE_HOME/replay-check, else ~/.cache/replay-check."""
    explicit = os.environ.get("REPLAY_CHECK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "replay-check"


def stacks_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "stacks"


@dataclass(frozen=True)
class BuiltStack:
    """A ready environment: its interpreter, the pins it holds, where it lives."""

    name: str
    path: Path
    pins: tuple[str, ...]
    python_version: str

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def versions(self) -> dict[str, str]:
        return dict(pin.split("==", 1) for pin in self.pins)

    @property
    def site_packages(self) -> Path:
        return self.path / "lib" / f"python{self.python_version}" / "site-packages"


def entry_path(resolution: Resolution, root: Path | None = None) -> Path:
    return stacks_dir(root) / "envs" / f"{_slug(resolution.spec.name)}-{resolution.key}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)[:48]


def read_marker(path: Path) -> dict | None:
    """The marker of a complete entry, or None for a half-built or damaged one."""
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not (path / "bin" / "python").exists() or not isinstance(data.get("pins"), list):
        return None
    return data


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built(resolution: Resolution, index: IndexOptions, *, root: Path | None = None,
                 progress: Progress | None = None) -> BuiltStack:
    """The built environment for `resolution`, building it (atomically) when missing or half-built."""
    final = entry_path(resolution, root)
    with _locked(final):
        if read_marker(final) is None:
            if final.exists():
                _say(progress, f"stack {resolution.spec.name}: rebuilding half-built entry {final}")
                shutil.rmtree(final)
            _build(resolution, index, final, progress)
        stack = BuiltStack(resolution.spec.name, final, resolution.pins, resolution.python)
        install_sources(stack)
    return stack


def _say(progress: Progress | None, text: str) -> None:
    if progress:
        progress(text)


def _interpreter(python: str) -> str:
    """The running interpreter when the versions agree (no discovery, no download), else let uv find one."""
    return sys.executable if python == f"{sys.version_info.major}.{sys.version_info.minor}" else python


def _build(resolution: Resolution, index: IndexOptions, final: Path, progress: Progress | None) -> None:
    name = resolution.spec.name
    start = time.perf_counter()
    _say(progress, f"stack {name}: building {len(resolution.pins)} packages for Python {resolution.python} "
                   f"into {final}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        run_uv(["venv", "--quiet", "--relocatable", "--python", _interpreter(resolution.python), str(tmp)], None,
               what=f"stack {name}: creating the environment")
        pins = tmp / "pins.txt"
        pins.write_text("\n".join(resolution.pins) + "\n")
        try:
            run_uv(["pip", "install", "--python", str(tmp / "bin" / "python"), "--no-deps",
                    *resolution.spec.binary_args(), "-r", str(pins)], index, what=f"stack {name}: installing",
                   stream=progress is not None)
        except StackError as exc:
            if index.offline:
                raise StackError(f"stack {name} is not built and cannot be built offline ({exc}); build it once "
                                 f"online: replay-check stacks build {name}") from None
            raise
        marker = {"stack": name, "python": resolution.python, "pins": list(resolution.pins),
                  "requirements": list(resolution.spec.requirements), "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "build_seconds": round(time.perf_counter() - start, 2)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))  # last: its presence means complete
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _say(progress, f"stack {name}: built in {time.perf_counter() - start:.1f} s")


def source_identity() -> tuple[Path, str]:
    """The replay_check package folder in use and a hash of its code (what a stack must run)."""
    package = Path(replay_check.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(_source_files(package)):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return package, digest.hexdigest()[:16]


def _source_files(package: Path) -> Iterator[Path]:
    for path in package.rglob("*"):
        rel = path.relative_to(package)
        if rel.parts[0] in ("data", "envs", "__pycache__") or "__pycache__" in rel.parts:
            continue
        if path.is_file() and path.suffix in (".py", ".toml"):
            yield path


def install_sources(stack: BuiltStack) -> None:
    """Copy replay_check's code into the stack (no dependencies) unless the same code is there already."""
    package, identity = source_identity()
    target = stack.site_packages / "replay_check"
    try:
        if (target / SOURCE_MARKER).read_text() == identity:
            return
    except OSError:
        pass
    staging = Path(tempfile.mkdtemp(prefix=".replay_check.tmp-", dir=stack.site_packages))
    for path in _source_files(package):
        dest = staging / path.relative_to(package)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    (staging / SOURCE_MARKER).write_text(identity)
    old = None
    if target.exists():
        old = target.with_name(f".replay_check.old-{os.getpid()}-{time.time_ns()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def list_entries(root: Path | None = None) -> list[tuple[Path, dict | None]]:
    """Every entry folder with its marker (None: half-built)."""
    envs = stacks_dir(root) / "envs"
    if not envs.is_dir():
        return []
    return [(p, read_marker(p)) for p in sorted(envs.iterdir()) if p.is_dir()]


def remove_entries(name: str, root: Path | None = None) -> list[Path]:
    """Delete every built entry of the stack `name` (all its resolutions); returns what was removed."""
    removed = []
    for path, marker in list_entries(root):
        owner = (marker or {}).get("stack") or path.name.rsplit("-", 1)[0].lstrip(".").split(".tmp")[0]
        if owner == name or owner == _slug(name):
            with _locked(path):
                shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

