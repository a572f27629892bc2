"""Delivery metrics, per subscription."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from switchboard.changes.delivery import Attempt

DELIVERIES = Counter(
    "switchboard_event_deliveries_total",
    "Delivery attempts of change events by subscription and result (2xx, 4xx, 5xx, error).",
    ["subscription", "result"],
)
LATENCY = Histogram(
    "switchboard_event_delivery_seconds",
    "Time of one delivery attempt (request sent to answer read).",
    ["subscription"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)


def observe(subscription: str, attempt: Attempt) -> None:
    result = "error" if attempt.status is None else f"{attempt.status // 100}xx"
    DELIVERIES.labels(subscription, result).inc()
    if attempt.latency_ms is not None:
        LATENCY.labels(subscription).observe(attempt.latency_ms / 1000)
