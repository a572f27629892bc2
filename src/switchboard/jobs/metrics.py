"""Scheduler metrics."""

from __future__ import annotations

from prometheus_client import Histogram

SCHEDULE_TICK = Histogram(
    "switchboard_schedule_tick_seconds",
    "Time of one scheduler tick, by result: idle (nothing due) or fired (slots fired). The "
    "scheduler's overhead per slot is the sum over a period divided by the slots fired in it.",
    ["result"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
