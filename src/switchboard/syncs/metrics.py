"""Sync metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter("switchboard_sync_runs_total", "Sync runs by outcome.", ["connection", "outcome"])
DURATION = Histogram(
    "switchboard_sync_run_duration_seconds",
    "Sync run time.",
    ["connection"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
LAST_SUCCESS = Gauge(
    "switchboard_sync_last_success_timestamp_seconds",
    "When the connection's last successful sync finished (epoch seconds).",
    ["connection"],
    multiprocess_mode="max",  # whichever process ran it
)
