"""The report's plots use fixed margins, not a layout engine: every text must still fit in the figure and clear
the neighbouring panel, whatever the values' tick labels look like."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from replay_check import report
from replay_check.divergence import Check

N = 400
RAMP = np.linspace(0.0, 1.0, N)


VALUES = {
    "wide": RAMP * 123456.0,  # six-digit tick labels
    "negative": (RAMP - 0.5) * 0.025,  # "-0.0100": negative, four decimals
    "tiny": RAMP * 3e-7 + 1e-9,  # an offset text ("1e-7") above the axes, under the panel's title
    "gap": np.where(RAMP > 0.9, np.nan, RAMP * 40.0),  # a gap at the end
}


def panels(names: list[str]) -> list:
    """A panel per named series, each with a limit line and a divergence of its own (three legend rows)."""
    out = []
    for name in names:
        values = VALUES[name]
        check = Check(group="g", column="c", limit=float(np.nanmax(np.abs(values))) * 0.5, unit="(normalized)")
        out.append((f"{name}/a_long_group_name", report._ylabel("max |error|", check), values, check, 250))
    return out


@pytest.mark.parametrize("names", [["tiny"], ["wide", "tiny", "negative", "gap"]], ids=["one", "four"])
def test_no_text_is_clipped_or_lies_on_another_panel(names, monkeypatch):
    drawn = []  # the texts the draw showed (not the ticks beyond the axis limits)
    draw = Text.draw
    monkeypatch.setattr(Text, "draw", lambda self, r: (drawn.append(self), draw(self, r))[1])
    fig = report._figure(panels(names), first=200, title="A figure title (recorded vs replayed)")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]  # ticks, labels, offset text, title, legend
    suptitle = fig._suptitle.get_window_extent(renderer)
    for box in [*boxes, suptitle]:
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (box, page)
    assert suptitle.y0 >= boxes[0].y1  # the figure title clears the first panel's title
    for upper, lower in zip(boxes, boxes[1:], strict=False):
        assert lower.y1 <= upper.y0, (upper, lower)  # a panel's title clears the panel above
    texts = [t for t in drawn if t.get_visible() and t.get_text()]
    assert fig._suptitle in texts and any(t.get_text() == "1e\u22127" for t in texts)  # the offset text is shown
    extents = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    for i, (a, box_a) in enumerate(extents):
        for b, box_b in extents[i + 1:]:
            assert not box_a.overlaps(box_b), (a, b)  # titles, labels, tick labels, offset texts apart


def test_ylabel_wraps_a_unit_in_parentheses_once():
    assert report._ylabel("max |error|", Check("g", "c", 1.0, unit="rad")) == "max |error| (rad)"
    assert report._ylabel("max |error|", Check("g", "c", 1.0, unit="(normalized)")) == "max |error| (normalized)"
    assert report._ylabel("max |error|", None) == "max |error|"


@pytest.mark.parametrize("level, limit", [(0.997, None), (43.0, 30.0)], ids=["ssim-like", "psnr-like"])
def test_a_curve_near_its_maximum_stays_clear_of_the_top_edge_and_the_legend(level, limit):
    """SSIM ~0.997 once ran along the panel's top edge, and PSNR's legend sat on its curve."""
    values = level * (1.0 + 0.002 * np.sin(np.arange(N) / 5.0))
    check = None if limit is None else Check(group="g", column="c", limit=limit, unit="dB")
    fig = report._figure([("camera SSIM", "SSIM", values, check, None)], first=None, title="Image agreement")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    curve_top = ax.transData.transform((0.0, float(values.max())))[1]
    assert ax.bbox.y1 - curve_top >= 0.15 * ax.bbox.height  # headroom between the curve and the frame
    legend = ax.get_legend()
    if legend is not None:
        assert legend.get_window_extent(canvas.get_renderer()).y0 >= curve_top  # the legend is above the curve
