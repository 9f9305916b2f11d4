"""Which bodies touch when: a contact timeline gathered step by step from `adapter.contacts()`.

A pair's first and last step and its number of steps in contact go into report.json; "contact
phases" (steps where the robot holds or pushes something, or two objects touch) let the cause
analysis ask whether one-step errors concentrate where contact physics acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

STATIC = frozenset({"world", "table", "floor", "ground"})


def _owner(body: str) -> str:
    """The articulated body a link belongs to ("vx300s_left/left_finger_link" -> "vx300s_left")."""
    return body.split("/", 1)[0]


def is_manipulation(pair: tuple[str, str]) -> bool:
    """A contact between two different movable things (not a robot touching itself, not a resting object)."""
    a, b = pair
    return a not in STATIC and b not in STATIC and _owner(a) != _owner(b)


@dataclass
class ContactTimeline:
    """Per body pair, the steps it was in contact; fed one step at a time (usable as an engine probe)."""

    steps: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    length: int = 0
    reads = ("contacts",)  # all it asks the adapter (replay_check.stepping: a stack's worker may step ahead)

    def __call__(self, t: int, adapter: Any) -> None:
        self.add(t, adapter.contacts())

    def add(self, t: int, pairs) -> None:
        self.length = max(self.length, t + 1)
        for pair in {(a, b) if a <= b else (b, a) for a, b in pairs}:  # each pair once, in sorted order
            self.steps.setdefault(pair, []).append(t)

    def phase(self, length: int | None = None) -> np.ndarray:
        """Boolean per step: some manipulation contact (see `is_manipulation`) is active."""
        out = np.zeros(length or self.length, dtype=bool)
        for pair, steps in self.steps.items():
            if is_manipulation(pair):
                idx = np.asarray(steps)
                out[idx[idx < out.size]] = True
        return out

    def to_list(self) -> list[dict[str, Any]]:
        """JSON rows ordered by first contact: bodies, first and last step, steps in contact."""
        rows = [{"bodies": list(pair), "first": s[0], "last": s[-1], "steps": len(s)}
                for pair, s in self.steps.items()]
        return sorted(rows, key=lambda r: (r["first"], r["bodies"]))


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]], label_a: str = "A", label_b: str = "B"
            ) -> list[str]:
    """Sentences for pairs whose contact starts differ between two timelines (e.g. two stacks)."""
    first_a = {tuple(r["bodies"]): r["first"] for r in a}
    first_b = {tuple(r["bodies"]): r["first"] for r in b}
    lines = []
    for pair in sorted(set(first_a) | set(first_b)):
        if not is_manipulation(pair):
            continue
        fa, fb = first_a.get(pair), first_b.get(pair)
        if fa == fb:
            continue
        where_a = f"from step {fa} on {label_a}" if fa is not None else f"never on {label_a}"
        where_b = f"from step {fb} on {label_b}" if fb is not None else f"never on {label_b}"
        lines.append(f"{pair[0]}-{pair[1]} contact {where_a}, {where_b}")
    return lines
