"""Where reports of a local dataset land: <report dir>/<name>-<hash of its absolute path>/."""

from __future__ import annotations

from pathlib import Path


def report_folder(report_dir: Path, root: Path) -> Path:
    from replay_check.dataset import open_dataset

    return Path(report_dir) / open_dataset(root=root).meta.report_name
