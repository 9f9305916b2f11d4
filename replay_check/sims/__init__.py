"""Simulator adapters behind one protocol (`replay_check.sims.base.SimAdapter`)."""

from __future__ import annotations

from replay_check.sims.base import InitialState, Pose, SimAdapter

__all__ = ["InitialState", "Pose", "SimAdapter", "make_adapter"]


def make_adapter(family: str, task: str, cameras: dict[str, tuple[int, int]] | None = None) -> SimAdapter:
    """Build the adapter a profile names (`adapter = "aloha" | "pusht"`), importing only that family."""
    if family == "aloha":
        from replay_check.sims.aloha import AlohaAdapter

        return AlohaAdapter(task, cameras)
    if family == "pusht":
        from replay_check.sims.pusht import PushTAdapter

        return PushTAdapter(task, cameras)
    from replay_check.errors import ProfileError

    raise ProfileError(f"unknown simulator family {family!r}; expected 'aloha' or 'pusht'")
