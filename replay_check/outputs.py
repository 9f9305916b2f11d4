"""Checks that every output can be written, made before any work starts.

A replay takes minutes; finding out at the end that `--rrd` points under a file, or that the
report folder is read-only, wastes them and (worse) can leave a half-replaced report. These
checks walk up to the first existing ancestor and write (and remove) a probe file there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from replay_check.errors import OutputError

# Containers the libx264 writer of video_export can produce, by extension.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v")


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_parent_writable(what: str, path: Path, target: Path) -> None:
    """`target` (a folder to create or write into) can be created under its first existing ancestor."""
    ancestor = _existing_ancestor(target)
    if not ancestor.is_dir():
        raise OutputError(f"{what} {path}: {ancestor} is a file, not a folder")
    _probe(what, path, ancestor)


def _probe(what: str, path: Path, folder: Path) -> None:
    """Create and remove a file in `folder`: permission bits alone lie (root, read-only mounts, ACLs)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"{what} {path}: folder {folder} is not writable ({exc.strerror or exc})") from None


def check_output_dir(what: str, path: str | Path) -> None:
    """`path` is (or can become) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; expected a folder")
    _check_parent_writable(what, path, path)


def check_output_file(what: str, path: str | Path) -> None:
    """`path` can be created or replaced as a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; expected a file name")
    _check_parent_writable(what, path, path.parent)


def check_video_path(what: str, path: str | Path) -> None:
    """A writable file whose extension names a container the video writer can produce."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        found = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise OutputError(f"{what} {path} has {found}; expected one of {', '.join(VIDEO_EXTENSIONS)}")
    check_output_file(what, path)
