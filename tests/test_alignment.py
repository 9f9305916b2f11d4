"""Video/row alignment: the offset that best matches recorded to replayed frames."""

from __future__ import annotations

import numpy as np

from replay_check.alignment import estimate_frame_offset


def moving_square(n: int, shift: int = 0) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        frame = np.zeros((40, 80), np.float32)
        x = 2 * (i + shift)
        frame[10:20, x : x + 10] = 200.0
        frames.append(frame)
    return frames


def test_a_shifted_sequence_reports_its_offset():
    found = estimate_frame_offset(moving_square(16, shift=3), moving_square(16 + 5)[:16])
    assert found.offset == 3 and found.significant


def test_aligned_and_static_sequences_report_nothing():
    aligned = estimate_frame_offset(moving_square(16), moving_square(16))
    assert aligned.offset == 0 and not aligned.significant
    static = [np.full((40, 80), 50.0, np.float32)] * 16
    assert not estimate_frame_offset(static, static).significant


def test_too_few_frames_give_no_answer():
    assert estimate_frame_offset(moving_square(4), moving_square(4)) is None
