"""Shared fixtures: small datasets recorded once per session with the project's own scripted policies."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def recorded_cube(tmp_path_factory):
    """A 40-step aloha-transfer-cube episode with images and environment_state, written by `record`."""
    from replay_check.record import record_dataset

    root = tmp_path_factory.mktemp("datasets") / "cube_recorded"
    record_dataset("aloha-transfer-cube", 1, root, seed=0, env_state=True, progress=False, steps=40)
    return root
