"""Simulator adapters behind one protocol (`replay_check.sims.base.SimAdapter`), built from a SimSpec."""

from __future__ import annotations

from replay_check.sims.base import InitialState, Pose, SimAdapter, SimObservation, SimSpec

__all__ = ["InitialState", "Pose", "SimAdapter", "SimObservation", "SimSpec", "make_adapter"]


def make_adapter(spec: SimSpec) -> SimAdapter:
    """The adapter `spec` describes, from its family's declaration (importing only that family)."""
    from replay_check.families import family

    declared = family(spec.family, spec.module)
    unknown = sorted(set(spec.physics) - set(declared.physics_keys))
    if unknown:
        from replay_check.errors import ProfileError

        known = ", ".join(declared.physics_keys) or "none"
        raise ProfileError(f"family {spec.family!r} has no physics override {unknown[0]!r}; known: {known}")
    return declared.make_adapter(spec)
