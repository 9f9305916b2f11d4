"""Data shipped inside the wheel: one recorded ALOHA insertion episode for `replay-check run` with no input."""

from __future__ import annotations

from pathlib import Path

SAMPLE_ROOT = Path(__file__).resolve().parent / "aloha_insertion_sample"


def sample_dataset_root() -> Path:
    """The embedded sample dataset (LeRobot v3.0, one episode, no environment_state)."""
    return SAMPLE_ROOT
