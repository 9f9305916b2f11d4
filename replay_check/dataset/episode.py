"""What the rest of the tool knows about a dataset and one of its episodes.

The reader fills these; the replay engine, estimators and reports only consume them. Frames are
never held whole: each camera exposes a `FrameSource` that decodes one frame at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Feature:
    """One entry of info.json `features`, with `names` flattened to a tuple of strings (or None)."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None

    @property
    def is_camera(self) -> bool:
        return self.dtype in ("video", "image")


@dataclass(frozen=True)
class DatasetMeta:
    """Dataset-level metadata (meta/info.json plus where it came from)."""

    root: Path
    codebase_version: str
    fps: float
    robot_type: str | None
    total_episodes: int
    total_frames: int
    features: dict[str, Feature]
    tasks: tuple[str, ...]
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None  # the Hub commit the revision resolved to

    @property
    def camera_keys(self) -> tuple[str, ...]:
        return tuple(k for k, f in self.features.items() if f.is_camera)

    @property
    def name(self) -> str:
        """A short, human name: the repo name, else the folder name."""
        return (self.repo_id or str(self.root)).rstrip("/").split("/")[-1]

    @property
    def identity(self) -> str:
        """What tells datasets apart: "hub:<repo id>" or "local:<absolute folder>"."""
        if self.repo_id:
            return f"hub:{self.repo_id}"
        return f"local:{Path(self.root).expanduser().resolve()}"

    @property
    def report_name(self) -> str:
        """The report folder's name: the short name plus a hash of the identity, so `a/ds` and `b/ds` differ."""
        return f"{self.name}-{hashlib.sha256(self.identity.encode()).hexdigest()[:8]}"


class FrameSource(Protocol):
    """Sequential frames of one camera within one episode."""

    height: int
    width: int

    def iter_frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """Yield HxWx3 uint8 frames for rows start, start+1, ... of the episode, one at a time."""


@dataclass(frozen=True)
class Episode:
    """One episode's rows (row t = observation before action t, action t) and its camera streams."""

    meta: DatasetMeta
    index: int
    task: str
    timestamps: np.ndarray
    state: np.ndarray
    action: np.ndarray
    environment_state: np.ndarray | None = None
    reward: np.ndarray | None = None
    success: np.ndarray | None = None
    done: np.ndarray | None = None
    cameras: dict[str, FrameSource] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.meta.fps

    @property
    def length(self) -> int:
        return int(self.state.shape[0])

    @property
    def state_names(self) -> tuple[str, ...] | None:
        feature = self.meta.features.get("observation.state")
        return feature.names if feature else None

    @property
    def action_names(self) -> tuple[str, ...] | None:
        feature = self.meta.features.get("action")
        return feature.names if feature else None

    def first_frame(self, camera: str) -> np.ndarray:
        """Frame 0 of `camera` (what initial-state estimation looks at)."""
        return next(iter(self.cameras[camera].iter_frames(0)))
