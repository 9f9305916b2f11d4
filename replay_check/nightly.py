"""The nightly run: validate pinned Hub datasets, or freshly recorded stand-ins when the Hub is unreachable.

Run by `nox -s nightly` as `python -m replay_check.nightly --config nightly.toml --out reports/nightly/<date>`;
`--offline` forces the recorded stand-ins. Exit status: 0 when every batch passes, 1 otherwise, 2 bad config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay_check.errors import ConfigError, ReplayCheckError
from replay_check.tomlfile import read_toml

_RUN_KEYS = {"workers", "timeout", "strict", "executor", "ray_address", "cpus_per_task"}
_HUB_KEYS = {"repo_id", "revision", "episodes", "mode", "image_stride"}
_OFFLINE_KEYS = {"env", "episodes", "steps", "env_state", "mode", "image_stride", "seed"}


@dataclass(frozen=True)
class HubDataset:
    repo_id: str
    revision: str = "main"
    episodes: str = "all"
    mode: str = "images"
    image_stride: int = 1


@dataclass(frozen=True)
class OfflineDataset:
    """A stand-in recorded on the spot with `record` (env_state False exercises the estimator)."""

    env: str
    episodes: int = 2
    steps: int | None = None
    env_state: bool = True
    mode: str = "images"
    image_stride: int = 1
    seed: int = 1000


@dataclass(frozen=True)
class NightlyConfig:
    hub: list[HubDataset] = field(default_factory=list)
    offline: list[OfflineDataset] = field(default_factory=list)
    workers: int | None = None
    timeout: float | None = None
    strict: bool = False
    executor: str = "local"  # "ray": every batch runs on the Ray cluster at ray_address
    ray_address: str | None = None
    cpus_per_task: float = 1.0


def _table(values: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(values) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
    return values


def load_config(path: str | Path) -> NightlyConfig:
    """Parse nightly.toml: [run], [[hub]] and [[offline]] tables (unknown keys are an error)."""
    path = Path(path)
    data = read_toml(path, "nightly config")
    _table(data, {"run", "hub", "offline"}, str(path))
    run = _table(data.get("run", {}), _RUN_KEYS, f"{path} [run]")
    try:
        hub = [HubDataset(**_table(d, _HUB_KEYS, f"{path} [[hub]]")) for d in data.get("hub", [])]
        offline = [OfflineDataset(**_table(d, _OFFLINE_KEYS, f"{path} [[offline]]")) for d in data.get("offline", [])]
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    missing = [d for d in hub if not isinstance(d.repo_id, str)] + [d for d in offline if not isinstance(d.env, str)]
    if missing:
        raise ConfigError(f"{path}: every [[hub]] needs repo_id and every [[offline]] needs env")
    return NightlyConfig(hub=hub, offline=offline, workers=run.get("workers"), timeout=run.get("timeout"),
                         strict=bool(run.get("strict", False)), executor=run.get("executor", "local"),
                         ray_address=run.get("ray_address"), cpus_per_task=float(run.get("cpus_per_task", 1.0)))


def hub_reachable(repo_id: str, revision: str | None = None, timeout: float = 5.0) -> bool:
    """One metadata request to the Hub; HF_HUB_OFFLINE=1 counts as unreachable without trying."""
    from replay_check.dataset.hub import hub_offline

    if hub_offline():
        return False
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(repo_id, revision=revision, timeout=timeout)
    except Exception:  # any failure (DNS, timeout, HTTP) means: do not depend on the Hub tonight
        return False
    return True


@dataclass
class BatchOutcome:
    name: str
    source: str
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    summary: str | None = None
    error: str | None = None


Validate = Callable[..., Any]
Record = Callable[..., Any]


def _validate(config: NightlyConfig, validate: Validate, out: Path, name: str, source: str,
              **where: Any) -> BatchOutcome:
    from replay_check.validate import ValidateRequest

    request = ValidateRequest(report_dir=out, workers=config.workers, timeout=config.timeout,
                              executor=config.executor, ray_address=config.ray_address,
                              cpus_per_task=config.cpus_per_task, **where)
    try:
        batch = validate(request)
    except ReplayCheckError as exc:
        return BatchOutcome(name, source, 1, error=str(exc))
    return BatchOutcome(name, source, batch.exit_code(config.strict), dict(batch.counts), str(batch.paths["html"]))


def run_nightly(config: NightlyConfig, out: Path, *, offline: bool = False, validate: Validate | None = None,
                record: Record | None = None, reachable: Callable[[str, str | None], bool] = hub_reachable,
                log: Callable[[str], None] = print) -> int:
    """Validate every configured batch into `out`; write out/nightly.json; 0 only when all pass."""
    from replay_check.record import record_dataset
    from replay_check.validate import validate_dataset

    validate = validate or validate_dataset
    record = record or record_dataset
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    use_hub = bool(config.hub) and not offline
    if use_hub and not reachable(config.hub[0].repo_id, config.hub[0].revision):
        log("the Hugging Face Hub is unreachable (or HF_HUB_OFFLINE is set): recording stand-in datasets instead")
        use_hub = False
    outcomes = []
    if use_hub:
        for d in config.hub:
            log(f"validating {d.repo_id}@{d.revision} episodes {d.episodes} ({d.mode})")
            outcomes.append(_validate(config, validate, out, d.repo_id, f"hub:{d.repo_id}@{d.revision}",
                                      repo_id=d.repo_id, revision=d.revision, episodes=d.episodes, mode=d.mode,
                                      image_stride=d.image_stride))
    else:
        for d in config.offline:
            outcomes.append(_record_and_validate(config, d, out, validate, record, log))
    for o in outcomes:
        log(f"{o.name}: exit {o.exit_code} {o.counts or o.error}")
    (out / "nightly.json").write_text(json.dumps({"hub": use_hub, "batches": [vars(o) for o in outcomes]},
                                                 indent=2) + "\n")
    return 0 if outcomes and all(o.exit_code == 0 for o in outcomes) else 1


def _record_and_validate(config: NightlyConfig, d: OfflineDataset, out: Path, validate: Validate, record: Record,
                         log: Callable[[str], None]) -> BatchOutcome:
    suffix = "" if d.env_state else "_no_env_state"
    root = out / "datasets" / f"{d.env.replace('-', '_')}{suffix}"
    log(f"recording {d.episodes} {d.env} episode(s) to {root} (env_state={d.env_state})")
    try:
        record(d.env, d.episodes, root, seed=d.seed, env_state=d.env_state, overwrite=True, progress=False,
               steps=d.steps)
    except ReplayCheckError as exc:
        return BatchOutcome(root.name, f"record:{d.env}", 1, error=f"record failed: {exc}")
    return _validate(config, validate, out, root.name, f"record:{d.env}", root=root, mode=d.mode,
                     image_stride=d.image_stride)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replay_check.nightly", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("nightly.toml"))
    parser.add_argument("--out", type=Path, required=True, help="report folder, e.g. reports/nightly/2026-01-31")
    parser.add_argument("--offline", action="store_true", help="do not use the Hub: record stand-in datasets")
    parser.add_argument("--ray-address", default=None, help="run every batch on this Ray cluster (--executor ray)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.ray_address:
            config = dataclasses.replace(config, executor="ray", ray_address=args.ray_address)
        return run_nightly(config, args.out, offline=args.offline)
    except ReplayCheckError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
