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


@pytest.fixture(scope="session")
def built_aloha_2023(tmp_path_factory):
    """The aloha-2023 stack (mujoco 2.3.7, numpy < 2) built from the package index into a fresh cache folder."""
    from replay_check import stacks

    root = tmp_path_factory.mktemp("stack-cache")
    return root, stacks.build(stacks.resolve_name("aloha-2023"), root=root)
