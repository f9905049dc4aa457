"""Geometry of the server-rendered SVG charts (no JavaScript, no chart library, no CDN).

Functions return plain numbers and labels; the templates draw them as SVG elements (so the
template engine escapes every label) with the ``funnel`` classes of ``passage.css``. Each
chart is also shown as a data table for screen readers and exact figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LABEL_WIDTH = 230
BAR_AREA = 300
ROW_HEIGHT = 26


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    href: str | None = None

    @property
    def text_y(self) -> float:
        return self.y + self.height * 0.72

    @property
    def value_x(self) -> float:
        return self.x + self.width + 6


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    width: int
    height: int
    label_x: int = 0


def bar_chart(
    items: Sequence[tuple[str, int]], *, hrefs: Sequence[str | None] | None = None
) -> BarChart:
    """Horizontal bars, one per item, scaled to the largest value."""
    top = max((value for _, value in items), default=0) or 1
    bars = []
    for i, (label, value) in enumerate(items):
        bars.append(
            Bar(
                label=label,
                value=value,
                x=LABEL_WIDTH,
                y=i * ROW_HEIGHT + 4,
                width=round(BAR_AREA * value / top, 1),
                height=ROW_HEIGHT - 8,
                href=hrefs[i] if hrefs else None,
            )
        )
    return BarChart(
        bars=bars, width=LABEL_WIDTH + BAR_AREA + 70, height=len(items) * ROW_HEIGHT + 8
    )


@dataclass(frozen=True)
class LineChart:
    points: str  # "x,y x,y ..." for <polyline>
    dots: list[tuple[float, float, str, float]]  # x, y, label, value
    width: int
    height: int
    baseline: float
    max_value: float
    ticks: list[tuple[float, str]]  # y, label


def line_chart(
    series: Sequence[tuple[str, float | None]], *, width: int = 600, height: int = 220
) -> LineChart:
    """A line through the non-empty values, left to right (e.g. median days per quarter)."""
    left, right, top_pad, bottom = 50, 20, 14, 34
    present = [(label, v) for label, v in series if v is not None]
    top = max((v for _, v in present), default=0.0) or 1.0
    count = max(len(series) - 1, 1)
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    dots = []
    for i, (label, value) in enumerate(series):
        if value is None:
            continue
        x = left + plot_w * i / count
        y = top_pad + plot_h * (1 - value / top)
        dots.append((round(x, 1), round(y, 1), label, value))
    ticks = [
        (round(top_pad + plot_h * (1 - fraction), 1), f"{top * fraction:.0f}")
        for fraction in (0.0, 0.5, 1.0)
    ]
    return LineChart(
        points=" ".join(f"{x},{y}" for x, y, _, _ in dots),
        dots=dots,
        width=width,
        height=height,
        baseline=top_pad + plot_h,
        max_value=top,
        ticks=ticks,
    )
