"""Chart geometry and the queue-depth sampler, without HTTP."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.console import charts
from switchboard.console.service import DepthHistory
from switchboard.db import Database
from switchboard.jobs import enqueue


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, (1, 1)), (1, (1, 1)), (3, (3, 1)), (4, (4, 1)), (5, (6, 2)), (9, (10, 5)), (37, (40, 10))],
)
def test_axis_has_whole_steps(value: int, expected: tuple[int, int]) -> None:
    assert charts.axis(value) == expected


def test_stacked_bars_stack_in_order_and_scale_to_the_axis() -> None:
    chart = charts.stacked_bars(
        [("10:00", {"a": 2, "b": 1}), ("10:10", {"a": 0, "b": 4})],
        [("a", "#000"), ("b", "#fff")],
        width=200,
        height=140,
    )
    assert [r.title for r in chart.bars] == ["10:00: 2 a", "10:00: 1 b", "10:10: 4 b"]
    a, b, tall = chart.bars
    assert b.y + b.height == pytest.approx(a.y)  # b sits on a
    assert tall.height == pytest.approx(chart.plot_height)  # 4 is the axis top
    assert a.height == pytest.approx(chart.plot_height / 2)
    assert [t.label for t in chart.y_ticks] == ["0", "1", "2", "3", "4"]


def test_time_lines_are_steps() -> None:
    chart = charts.time_lines({"k · dead": [(0.0, 0), (10.0, 2), (20.0, 1)]}, width=156, height=140)
    [line] = chart.lines
    # Left 44, plot 100 wide; bottom 112, top 12 (axis top 2: 50 px per job).
    assert line.points == "44.0,112.0 94.0,112.0 94.0,12.0 144.0,12.0 144.0,62.0"
    assert line.last == 1 and chart.legend == [("k · dead", charts.PALETTE[0])]


async def test_depth_history_samples_until_stopped(db: Database) -> None:
    async with db.session() as session:
        await enqueue(session, "crm.push", {})
    history = DepthHistory(every=0.01, keep=3)
    task = asyncio.create_task(history.run(db))
    while len(history.samples) < 3:
        await asyncio.sleep(0.01)
    history.stop()
    await asyncio.wait_for(task, timeout=5)
    assert len(history.samples) == 3  # bounded
    assert all(s.counts == {("crm.push", "pending"): 1} for s in history.samples)
