"""Every bad input class of issue 13: one line naming the file, field or option, exit 2, nothing written.

One small PushT recording is copied and damaged per case; replays run in --mode state without Rerun,
so a case costs a process-free CLI call of well under a second.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from replay_check.cli import cli
from tests.cli_checks import error_line


@pytest.fixture(scope="module")
def pusht_ds(tmp_path_factory) -> Path:
    from replay_check.record import record_dataset

    root = tmp_path_factory.mktemp("bad_input") / "ds"
    record_dataset("pusht", 1, root, seed=1, progress=False, steps=12)
    return root


def _edit_info(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "meta" / "info.json"
        info = json.loads(path.read_text())
        change(info)
        path.write_text(json.dumps(info))

    return apply


def _set(key: str, value):
    return _edit_info(lambda info: info.__setitem__(key, value))


def _feature(key: str, field: str, value):
    return _edit_info(lambda info: info["features"][key].__setitem__(field, value))


def _drop_feature(key: str):
    return _edit_info(lambda info: info["features"].pop(key))


def _video_size(height: int, width: int):
    def change(info: dict) -> None:
        feature = info["features"]["observation.image"]
        feature["shape"] = [height, width, 3]
        feature["info"].update({"video.height": height, "video.width": width})

    return _edit_info(change)


def _not_utf8(root: Path) -> None:
    path = root / "meta" / "info.json"
    path.write_bytes(path.read_bytes().replace(b'"fps"', b'"fps\xff"', 1))


def _rewrite_column(name: str, make: Callable[[pa.Table], pa.Array]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = next((root / "data").rglob("*.parquet"))
        table = pq.read_table(path)
        index = table.schema.get_field_index(name)
        column = make(table)
        table = table.set_column(index, pa.field(name, column.type), column)
        pq.write_table(table, path)

    return apply


def _string_actions(table: pa.Table) -> pa.Array:
    return pa.array([[str(v) for v in row] for row in table.column("action").to_pylist()])


def _jumping_timestamps(table: pa.Table) -> pa.Array:
    times = np.array(table.column("timestamp").to_pylist(), dtype=np.float32)
    times[5:] += 0.05
    return pa.array(times)


DATA_CASES = {
    "info.json not UTF-8": (_not_utf8, ["info.json is not UTF-8 text (byte 0xff"]),
    "fps a string": (_set("fps", "ten"), ['fps is "ten"; expected a positive number']),
    "fps null": (_set("fps", None), ["fps is null; expected a positive number"]),
    "fps 0": (_set("fps", 0), ["fps is 0; expected a positive number"]),
    "fps negative": (_set("fps", -10), ["fps is -10; expected a positive number"]),
    "total_episodes not an integer": (_set("total_episodes", "1"), ['total_episodes is "1"; expected a non-negative']),
    "features not an object": (_set("features", ["action"]), ["features is an array; expected an object"]),
    "shape not a list of integers": (_feature("observation.state", "shape", "2"),
                                     ["feature 'observation.state' has shape \"2\"; expected a list of integers"]),
    "shape of floats": (_feature("action", "shape", [2.5]),
                        ["feature 'action' has shape [2.5]; expected a list of integers"]),
    "no action feature": (_drop_feature("action"), ["features lack 'action'"]),
    "action column of strings": (_rewrite_column("action", _string_actions),
                                 ["column 'action' holds string values; expected numbers"]),
    "video resolution differs": (_video_size(100, 120),
                                 ["is 96x96; meta/info.json says 120x100", "observation.image"]),
    "timestamps not 1/fps apart": (_rewrite_column("timestamp", _jumping_timestamps),
                                   ["timestamps are not increasing by 1/fps = 0.1 s: row 5"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_dataset_is_one_line_and_writes_nothing(case, pusht_ds, tmp_path):
    damage, needles = DATA_CASES[case]
    root = tmp_path / "ds"
    shutil.copytree(pusht_ds, root)
    damage(root)
    reports = tmp_path / "reports"
    result = CliRunner().invoke(cli, ["run", "--root", str(root), "--mode", "state", "--no-rerun",
                                      "--report-dir", str(reports), "-q"])
    error_line(result, *needles)
    assert not reports.exists() or not any(reports.rglob("report.json"))


OPTION_CASES = {
    "consecutive_steps=0": (["--tolerance", "consecutive_steps=0"], ["'consecutive_steps' must be >= 1"]),
    "infinite tolerance": (["--tolerance", "agent_px=inf"], ["'agent_px' must be a finite number >= 0, got inf"]),
    "warn_fraction > 1": (["--tolerance", "warn_fraction=1.5"], ["'warn_fraction' must be within [0, 1]"]),
    "tolerance the profile does not use": (["--tolerance", "arm_rad=0.1"],
                                           ["--tolerance arm_rad: profile pusht does not use this tolerance"]),
    "--revision with --root": (["--revision", "main"], ["--revision applies to --repo-id"]),
    "--web-port without --serve": (["--web-port", "9999"], ["--web-port needs --serve"]),
    "--spawn with --no-rerun": (["--spawn", "--no-rerun"], ["--spawn needs a Rerun recording"]),
    "--env-state-from a missing folder": (["--env-state-from", "./no/such/folder"],
                                          ["--env-state-from ./no/such/folder: no such folder"]),
}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_option_is_one_line(case, pusht_ds, tmp_path):
    extra, needles = OPTION_CASES[case]
    reports = tmp_path / "reports"
    args = ["run", "--root", str(pusht_ds), "--mode", "state", "--report-dir", str(reports), "-q", *extra]
    if "--no-rerun" not in extra and "--spawn" not in extra:
        args.append("--no-rerun")
    error_line(CliRunner().invoke(cli, args), *needles)
    assert not reports.exists() or not any(reports.rglob("report.json"))


def test_validate_rejects_revision_with_root(pusht_ds, tmp_path):
    result = CliRunner().invoke(cli, ["validate", "--root", str(pusht_ds), "--revision", "v1", "--report-dir",
                                      str(tmp_path)])
    error_line(result, "--revision applies to --repo-id")


@pytest.mark.parametrize(("text", "needles"), [
    ("[profiles.pusht-typo]\nagent_px = 3.0\n", ["[profiles.pusht-typo] names no known profile"]),
    ("[profiles.pusht]\nobject_mm = 3.0\n", ["thresholds [profiles.pusht] object_mm: profile pusht does not use"]),
    ("[default]\nwarn_fraction = -0.5\n", ["'warn_fraction' must be a finite number >= 0"]),
])
def test_bad_thresholds_file_is_one_line(text, needles, pusht_ds, tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["run", "--root", str(pusht_ds), "--mode", "state", "--no-rerun", "-q",
                                      "--report-dir", str(tmp_path / "reports"), "--thresholds", str(path)])
    error_line(result, *needles)
