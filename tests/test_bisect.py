"""Bisect's search and table, with replays replaced by a known outcome per release (real stacks are slow)."""

from __future__ import annotations

import json

import pytest

from replay_check import bisect
from replay_check.errors import InputError

RELEASES = ["2.3.7", "3.0.0", "3.0.1", "3.1.0", "3.1.6", "3.2.1", "3.2.2", "3.3.0", "3.8.1"]


@pytest.fixture
def fake(monkeypatch):
    """Outcome changes at 3.2.2; 3.2.1 is broken, 3.1.0 does not resolve. Records which releases were tried."""
    tried: list[str] = []

    def trial(version, package, episode, profile, settings, offline):
        tried.append(version)
        if version == "3.1.0":
            return bisect.Trial(version, "unresolvable", reason="no dm-control for it")
        if version == "3.2.1":
            return bisect.Trial(version, "broken", reason="AttributeError: eq_objtype")
        changed = [int(p) for p in version.split(".")] >= [3, 2, 2]
        return bisect.Trial(version, "tested", outcome=("fail", False) if changed else ("pass", True),
                            moved={"dm-control": ["1.0.41", "1.0.14"]} if version == "2.3.7" else {})

    class Meta:
        name, report_name = "ds", "ds-1234"

    class Episode:
        meta, index = Meta, 0

    class Profile:
        name = "aloha-insertion"

    class Settings:
        mode = "state"

    monkeypatch.setattr(bisect, "_try", trial)
    monkeypatch.setattr(bisect, "list_releases", lambda package, good, bad: RELEASES)
    monkeypatch.setattr("replay_check.pipeline.prepare", lambda request: (Episode, Profile, Settings))
    return tried


def test_finds_the_first_changed_release_skipping_untestable_ones(fake, tmp_path):
    result = bisect.bisect_releases(None, "mujoco", "2.3.7", "3.8.1")
    assert result.first_bad == "3.2.2"
    assert len(fake) < len(RELEASES)  # a search, not a sweep
    assert "mujoco 3.2.2 (fail, success False)" in result.conclusion
    folder = bisect.write(result, tmp_path / "b")
    table = (folder / "bisect.md").read_text()
    assert "| 3.2.2 | tested | fail | False |" in table and "dm-control 1.0.41->1.0.14" in table
    assert json.loads((folder / "bisect.json").read_text())["first_bad"] == "3.2.2"


def test_same_outcome_at_both_ends_says_no_change(fake, monkeypatch):
    result = bisect.bisect_releases(None, "mujoco", "2.3.7", "3.1.6")
    assert result.first_bad is None and result.conclusion.startswith("no change")
    assert fake == ["2.3.7", "3.1.6"]


def test_releases_come_from_pip_and_the_range_is_checked(monkeypatch):
    class Done:
        returncode, stderr = 0, ""
        stdout = "mujoco (3.8.1)\nAvailable versions: 3.8.1, 3.3.0, 3.3.0rc1, 3.0.0, 2.3.7, 2.3.6\n"

    monkeypatch.setattr(bisect.subprocess, "run", lambda *a, **k: Done)
    assert bisect.list_releases("mujoco", "2.3.7", "3.8.1") == ["2.3.7", "3.0.0", "3.3.0", "3.8.1"]
    with pytest.raises(InputError, match="older release"):
        bisect.list_releases("mujoco", "3.8.1", "2.3.7")
    with pytest.raises(InputError, match="3.1.0 is not a release"):
        bisect.list_releases("mujoco", "2.3.7", "3.1.0")
