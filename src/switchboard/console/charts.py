"""Chart geometry for inline SVG: numbers in, shapes out. The templates draw the shapes, so every
label goes through Jinja2's escaping like any other text."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")


def axis(value: float, ticks: int = 4) -> tuple[int, int]:
    """``(top, step)`` of a count axis: whole steps of 1, 2 or 5 x 10^n, at most ``ticks`` of
    them, with ``top`` (a multiple of ``step``) at or above ``value``."""
    if value <= 0:
        return 1, 1
    raw = value / ticks
    exponent = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * exponent for m in (1, 2, 5, 10) if m * exponent >= raw)
    step = max(int(step), 1)
    return math.ceil(value / step) * step, step


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str
    anchor: str = "middle"
    """SVG ``text-anchor``: the first and last time labels stay inside the plot."""


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: str
    """SVG ``points`` of a polyline."""
    last: int


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    bars: list[Rect] = field(default_factory=list)
    lines: list[Series] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    """``(label, color)``."""

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height

    @property
    def right(self) -> int:
        return self.left + self.plot_width


def _frame(width: int, height: int, value: float) -> tuple[Chart, int]:
    top_value, step = axis(value)
    chart = Chart(
        width=width,
        height=height,
        left=44,
        top=12,
        plot_width=width - 44 - 12,
        plot_height=height - 12 - 28,
    )
    for tick in range(0, top_value + 1, step):
        chart.y_ticks.append(Tick(chart.bottom - chart.plot_height * tick / top_value, str(tick)))
    return chart, top_value


def stacked_bars(
    groups: list[tuple[str, dict[str, int]]],
    stack: list[tuple[str, str]],
    *,
    width: int = 1100,
    height: int = 280,
) -> Chart:
    """One bar per group (x label, values by key), stacked in ``stack`` order (key, color)."""
    chart, top_value = _frame(width, height, max((sum(v.values()) for _, v in groups), default=0))
    chart.legend = [(key, color) for key, color in stack]
    if not groups:
        return chart
    slot = chart.plot_width / len(groups)
    bar = max(slot * 0.7, 1.0)
    label_every = max(1, math.ceil(len(groups) * 70 / chart.plot_width))
    for i, (label, values) in enumerate(groups):
        x = chart.left + i * slot + (slot - bar) / 2
        y = float(chart.bottom)
        for key, color in stack:
            n = values.get(key, 0)
            if n <= 0:
                continue
            h = chart.plot_height * n / top_value
            y -= h
            chart.bars.append(
                Rect(
                    round(x, 1),
                    round(y, 1),
                    round(bar, 1),
                    round(h, 1),
                    color,
                    f"{label}: {n} {key}",
                )
            )
        if i % label_every == 0:
            chart.x_ticks.append(Tick(round(chart.left + i * slot + slot / 2, 1), label))
    return chart


def time_lines(
    series: dict[str, list[tuple[float, int]]],
    *,
    width: int = 1100,
    height: int = 260,
) -> Chart:
    """One polyline per series of ``(unix time, value)`` samples, on a shared time axis, drawn
    as steps: a sample's value holds until the next sample."""
    times = [t for points in series.values() for t, _ in points]
    peak = max((v for points in series.values() for _, v in points), default=0)
    chart, top_value = _frame(width, height, peak)
    if not times:
        return chart
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1.0)

    def x(t: float) -> float:
        return round(chart.left + chart.plot_width * (t - t0) / span, 1)

    def y(v: int) -> float:
        return round(chart.bottom - chart.plot_height * v / top_value, 1)

    for i, (label, points) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        ordered = sorted(points)
        steps: list[str] = []
        for n, (t, v) in enumerate(ordered):
            if n:
                steps.append(f"{x(t)},{y(ordered[n - 1][1])}")
            steps.append(f"{x(t)},{y(v)}")
        last = ordered[-1][1] if ordered else 0
        chart.lines.append(Series(label=label, color=color, points=" ".join(steps), last=last))
        chart.legend.append((label, color))
    labels: list[str] = []
    for i in range(5):
        t = t0 + span * i / 4
        label = datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")
        if label not in labels:  # a short history would repeat the same second
            labels.append(label)
            anchor = "start" if i == 0 else "end" if i == 4 else "middle"
            chart.x_ticks.append(Tick(x(t), label, anchor))
    return chart
