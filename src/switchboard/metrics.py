"""Prometheus metrics shared by the whole process."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

HTTP_REQUESTS = Counter(
    "switchboard_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "switchboard_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

JOBS = Gauge("switchboard_jobs", "Jobs by kind and state (succeeded excluded).", ["kind", "state"])
JOB_START_LATENCY = Histogram(
    "switchboard_job_start_latency_seconds",
    "From when a job was due (enqueued or retry time) to when a worker started it.",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
JOB_DURATION = Histogram(
    "switchboard_job_duration_seconds",
    "Job run time by outcome (succeeded, retry, dead, lost).",
    ["kind", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
JOB_RETRIES = Counter("switchboard_job_retries_total", "Job runs that will be retried.", ["kind"])
JOBS_DEAD = Counter("switchboard_jobs_dead_total", "Jobs that went dead.", ["kind"])
SCHEDULE_FIRES = Counter("switchboard_schedule_fires_total", "Schedule slots fired.", ["schedule"])

WEBHOOK_DELIVERIES = Counter(
    "switchboard_webhook_deliveries_total",
    "Inbound webhook deliveries by connection and outcome.",
    ["connection", "outcome"],
)
TASKS = Gauge("switchboard_tasks", "Tasks by state.", ["state"])
REPORT_RUNS = Counter("switchboard_report_runs_total", "Report runs by outcome.", ["outcome"])
REPORT_DURATION = Histogram(
    "switchboard_report_duration_seconds",
    "Time to compute and write one report window.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
