"""Steps a metric column should have measured and did not (an object not seen, a frame without an estimate).

A column's cadence is the smallest step between two measured values (1, or the image stride): steps on
that cadence inside the measured span that hold NaN are gaps. Plots break their line there instead of
bridging it, and reports count them, so a maximum over the measured steps says what it skipped.
"""

from __future__ import annotations

import numpy as np


def cadence(values: np.ndarray) -> int:
    """The smallest distance between two measured (finite) steps; 1 with fewer than two."""
    steps = np.flatnonzero(np.isfinite(np.asarray(values, dtype=np.float64)))
    if steps.size < 2:
        return 1
    return int(np.diff(steps).min())


def missing_steps(values: np.ndarray) -> np.ndarray:
    """Steps on the column's cadence, between its first and last measured step, that hold no value."""
    values = np.asarray(values, dtype=np.float64)
    measured = np.flatnonzero(np.isfinite(values))
    if measured.size < 2:
        return np.zeros(0, dtype=np.int64)
    every = cadence(values)
    expected = np.arange(measured[0], measured[-1] + 1, every)
    return expected[~np.isfinite(values[expected])]


def gap_starts(values: np.ndarray) -> np.ndarray:
    """The first missing step of each run of missing steps (one NaN there breaks a plotted line)."""
    missing = missing_steps(values)
    if missing.size == 0:
        return missing
    every = cadence(values)
    new_run = np.concatenate([[True], np.diff(missing) > every])
    return missing[new_run]
