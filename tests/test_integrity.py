"""Nothing lost, nothing stale: reuse keyed by content, distinct report folders, outputs checked first.

Issue 13's data-integrity defects, each reproduced as a user met it. Small PushT recordings (a second
each), replays in --mode state.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from replay_check.cli import cli
from replay_check.dataset import open_dataset
from replay_check.fingerprint import episode_fingerprint
from replay_check.validate import ValidateRequest, validate_dataset
from tests.cli_checks import error_line
from tests.report_paths import report_folder


@pytest.fixture(scope="module")
def pusht_two(tmp_path_factory) -> Path:
    """Two 20-step PushT episodes sharing one data parquet and one mp4."""
    from replay_check.record import record_dataset

    root = tmp_path_factory.mktemp("integrity") / "ds"
    record_dataset("pusht", 2, root, seed=3, progress=False, steps=20)
    return root


def _set_action(root: Path, episode: int, row: int, value: float) -> None:
    """Rewrite one action value in place, keeping the file's size class and its mtime."""
    path = next((root / "data").rglob("*.parquet"))
    stat = path.stat()
    table = pq.read_table(path)
    actions = np.array(table.column("action").to_pylist(), dtype=np.float32)
    rows = np.flatnonzero(np.array(table.column("episode_index").to_pylist()) == episode)
    actions[rows[row], 0] = value
    column = pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), actions.shape[1])
    table = table.set_column(table.schema.get_field_index("action"), table.schema.field("action"), column)
    pq.write_table(table, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _started(events) -> list[int]:
    return sorted(e.episode for e in events if e.kind == "start")


def test_fingerprint_follows_content_per_episode(pusht_two, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pusht_two, copy)
    before = [episode_fingerprint(open_dataset(root=copy).episode(i)) for i in (0, 1)]
    assert before == [episode_fingerprint(open_dataset(root=pusht_two).episode(i)) for i in (0, 1)]
    assert before[0] != before[1]
    _set_action(copy, 1, 5, 123.0)
    after = [episode_fingerprint(open_dataset(root=copy).episode(i)) for i in (0, 1)]
    assert after[0] == before[0] and after[1] != before[1]  # episodes sharing a file stay independent


def test_fingerprint_covers_the_episodes_video_segment(pusht_two, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pusht_two, copy)
    mp4 = next((copy / "videos").rglob("*.mp4"))
    source = open_dataset(root=copy).episode(1).cameras["observation.image"]
    before = episode_fingerprint(open_dataset(root=copy).episode(1))
    import av

    with av.open(str(mp4)) as container:  # the byte position of a packet inside episode 1's segment
        stream = container.streams.video[0]
        inside = [p for p in container.demux(stream) if p.pts is not None and p.pos is not None
                  and float(p.pts * stream.time_base) > source.from_timestamp + 0.5 and p.size > 8]
    data = bytearray(mp4.read_bytes())
    position = inside[0].pos + inside[0].size // 2
    data[position] ^= 0xFF
    mp4.write_bytes(bytes(data))
    assert episode_fingerprint(open_dataset(root=copy).episode(1)) != before


@pytest.mark.slow
def test_validate_does_not_reuse_a_report_of_data_rerecorded_in_place(pusht_two, tmp_path):
    data = tmp_path / "ds"
    shutil.copytree(pusht_two, data)
    reports = tmp_path / "reports"
    request = ValidateRequest(root=data, mode="state", report_dir=reports, plots=False, workers=1)
    assert validate_dataset(request).counts["pass"] == 2
    _set_action(data, 0, 0, float("nan"))  # same path, size and mtime; episode 0 now holds a NaN action
    events = []
    batch = validate_dataset(request, on_event=events.append)
    assert _started(events) == [0]  # episode 1 is unchanged and reused, episode 0 is replayed
    assert batch.summary["run"]["resumed"] == 1
    assert (batch.counts["error"], batch.counts["pass"]) == (1, 1)
    assert batch.exit_code() == 3  # an episode could not be judged: neither pass nor a FAIL verdict
    message = next(e["message"] for e in batch.summary["episodes"] if e["episode"] == 0)
    assert message == "InputError: action has a non-finite value (nan) at frame 0, column 0"
    report = json.loads((report_folder(reports, data) / "episode_000001" / "report.json").read_text())
    assert report["dataset"]["fingerprint"] == episode_fingerprint(open_dataset(root=data).episode(1))
    assert report["settings"]["stack"] == "installed"


def test_datasets_with_the_same_folder_name_get_their_own_report_folders(pusht_two, tmp_path):
    a, b = tmp_path / "a" / "ds", tmp_path / "b" / "ds"
    shutil.copytree(pusht_two, a)
    shutil.copytree(pusht_two, b)
    reports = tmp_path / "reports"
    for root in (a, b):
        result = CliRunner().invoke(cli, ["run", "--root", str(root), "--mode", "state", "--no-rerun", "--no-plots",
                                          "--report-dir", str(reports), "-q"])
        assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in reports.iterdir())
    assert len(folders) == 2 and all(name.startswith("ds-") for name in folders)
    for root in (a, b):
        report = json.loads((report_folder(reports, root) / "episode_000000" / "report.json").read_text())
        assert report["dataset"]["root"] == str(root) and report["dataset"]["id"] == f"local:{root.resolve()}"


def test_unwritable_rrd_fails_before_work_and_keeps_the_previous_report(pusht_two, tmp_path):
    reports = tmp_path / "reports"
    args = ["run", "--root", str(pusht_two), "--mode", "state", "--no-plots", "--report-dir", str(reports), "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    folder = report_folder(reports, pusht_two) / "episode_000000"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert "recording.rrd" in before
    (tmp_path / "file").write_text("x")
    for option, value, message in (
        ("--rrd", tmp_path / "file" / "x.rrd", "is a file, not a folder"),
        ("--video", tmp_path / "ep.xyz", "has extension '.xyz'; expected one of .mp4"),
        ("--report-dir", tmp_path / "file", "is a file"),
    ):
        error_line(CliRunner().invoke(cli, [*args, option, str(value)]), option, message)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_run_that_fails_midway_leaves_the_previous_report_whole(pusht_two, tmp_path, monkeypatch):
    from replay_check import report as report_module

    reports = tmp_path / "reports"
    args = ["run", "--root", str(pusht_two), "--mode", "state", "--no-plots", "--report-dir", str(reports), "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    folder = report_folder(reports, pusht_two) / "episode_000000"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module, "_write_parquet", broken)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3  # not the user's input and not a FAIL verdict
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["episode_000000"]  # no temporary leftovers


def test_record_overwrites_only_a_dataset_and_never_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    args = ["record", "--env", "pusht", "--steps", "2", "-q", "--overwrite"]
    error_line(CliRunner().invoke(cli, [*args, "--out", "."]), "--out . is the current folder")
    error_line(CliRunner().invoke(cli, [*args, "--out", str(tmp_path)]), "is the current folder")
    error_line(CliRunner().invoke(cli, [*args, "--out", "notes.txt/ds"]), "notes.txt is a file, not a folder")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    error_line(CliRunner().invoke(cli, [*args, "--out", "mine"]), "no LeRobot dataset", "refusing to overwrite")
    assert (mine / "thesis.tex").read_text() == "years of work"
    error_line(CliRunner().invoke(cli, ["record", "--env", "pusht", "--out", "x", "--seed", "-5"]), "--seed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]


def test_validate_checks_its_report_dir_before_any_work(pusht_two, tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(cli, ["validate", "--root", str(pusht_two), "--mode", "state",
                                      "--report-dir", str(tmp_path / "file" / "reports")])
    error_line(result, "--report-dir", "is a file, not a folder")


def test_ctrl_c_during_run_exits_130_not_1(pusht_two, tmp_path, monkeypatch):
    import replay_check.cli.run as run_command

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "run_episode", interrupted)
    result = CliRunner().invoke(cli, ["run", "--root", str(pusht_two), "--mode", "state", "--no-rerun",
                                      "--report-dir", str(tmp_path), "-q"])
    assert result.exit_code == 130 and "interrupted" in result.output and "Traceback" not in result.output
