"""One replay configuration for `run` and `validate`: the options both take, resolved once.

`ReplayOptions` is what a user gives (dataset source, profile name, mode, stride, tolerances, report
folder, twin dataset); `RunRequest` and `ValidateRequest` extend it. `resolve` turns options plus the
dataset's metadata into a `ReplayConfig` (profile chosen, mode fallback applied, tolerances merged,
settings hash computed): picklable, so `validate` resolves it once and hands it to every worker
inside each episode's RunRequest (`RunRequest.config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from replay_check.dataset.episode import DatasetMeta
from replay_check.errors import InputError
from replay_check.profiles import Profile, select_profile
from replay_check.provenance import settings_hash
from replay_check.steps import ReplaySettings
from replay_check.thresholds import tolerances_for


@dataclass(frozen=True)
class ReplayOptions:
    """What every replay is asked with. root and repo_id both None means the embedded sample."""

    root: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    profile: str | None = None
    mode: str = "images"
    image_stride: int = 1
    thresholds: dict[str, Any] | None = None
    tolerance_overrides: dict[str, float] = field(default_factory=dict)
    report_dir: Path = Path("reports")
    env_state_from: str | None = None  # a twin dataset supplying observation.environment_state
    plots: bool = True
    stack: str | None = None  # physics stack to replay on (None or "installed": this environment, in process)
    offline: bool = False  # build stacks from uv's cache only
    ensemble: int | None = None  # cause analysis (ReplaySettings): None automatic, 0 off, N copies
    resync: int | None = None
    strict: bool = False  # a marginal episode fails


@dataclass(frozen=True)
class ReplayConfig:
    """A replay configuration resolved against one dataset; the same for every episode of a batch."""

    profile: Profile
    settings: ReplaySettings
    settings_hash: str
    env_state_from: str | None = None
    physics: dict[str, float] = field(default_factory=dict)  # SimSpec.physics overrides


def dataset_source(options: ReplayOptions) -> dict[str, Any]:
    """Keyword arguments for open_dataset; the embedded sample when neither root nor repo_id is given."""
    if options.root is None and options.repo_id is None:
        from replay_check.data import sample_dataset_root

        return {"root": sample_dataset_root()}
    return {"root": options.root, "repo_id": options.repo_id, "revision": options.revision}


def resolve_settings(meta: DatasetMeta, profile: Profile, *, mode: str, image_stride: int,
                     thresholds: dict[str, Any] | None, tolerance_overrides: dict[str, float],
                     ensemble: int | None = None, resync: int | None = None, strict: bool = False
                     ) -> ReplaySettings:
    """The settings a replay of this dataset runs with (ReplaySettings checks mode and stride)."""
    for name, value in (("--ensemble", ensemble), ("--resync", resync)):
        if value is not None and value < 0:
            raise InputError(f"{name} {value}; expected 0 (off) or a positive count")
    settings = ReplaySettings(mode=mode, image_stride=image_stride,
                              tolerances=tolerances_for(profile, thresholds, tolerance_overrides),
                              ensemble=ensemble, resync=resync, strict=strict)
    if not meta.camera_keys:
        settings = replace(settings, mode="state")  # keypoints-only datasets: nothing to render
    return settings


def resolve(options: ReplayOptions, meta: DatasetMeta) -> ReplayConfig:
    """Choose the profile, resolve settings and hash them (every configuration error surfaces here)."""
    profile = select_profile(meta, options.profile)
    settings = resolve_settings(meta, profile, mode=options.mode, image_stride=options.image_stride,
                                thresholds=options.thresholds, tolerance_overrides=options.tolerance_overrides,
                                ensemble=options.ensemble, resync=options.resync, strict=options.strict)
    return ReplayConfig(profile=profile, settings=settings, settings_hash=settings_hash(settings, profile.name),
                        env_state_from=options.env_state_from)
