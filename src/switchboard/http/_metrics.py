"""Prometheus metrics of outbound calls, per connection."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "switchboard_outbound_requests_total",
    "Outbound HTTP requests by connection and status ('error': no response).",
    ["connection", "status"],
)
LATENCY = Histogram(
    "switchboard_outbound_request_duration_seconds",
    "Outbound HTTP request latency (one attempt).",
    ["connection"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter(
    "switchboard_outbound_retries_total",
    "Outbound attempts that will be retried, by reason (status code, transport, auth).",
    ["connection", "reason"],
)
RATE_LIMITED = Counter(
    "switchboard_outbound_rate_limited_total", "429 answers from the provider.", ["connection"]
)
BREAKER = Gauge(
    "switchboard_outbound_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["connection"],
    multiprocess_mode="livemax",  # the worst breaker of the running processes
)
BUDGET = Gauge(
    "switchboard_outbound_budget_remaining",
    "Free tokens of the rate budget at the last lease or correction.",
    ["connection", "bucket"],
    multiprocess_mode="mostrecent",  # one budget, shared in the database: the newest view
)

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
