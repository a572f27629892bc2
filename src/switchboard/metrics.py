"""Prometheus metrics shared by the whole process.

Several processes on one host (``switchboard serve --workers N``, or any processes given the same
``PROMETHEUS_MULTIPROC_DIR``) use prometheus_client's multiprocess mode: every process writes its
samples to memory-mapped files in that directory, and ``/metrics`` in any of them aggregates the
directory, so each scrape shows the whole host whichever process answers it. Counters and
histograms are summed (a dead process's counts are kept); each gauge names its own
``multiprocess_mode``. Gauges computed from the database at scrape time (:class:`ScrapeGauge`)
are not aggregated at all: the answering process reads the database, which is the same for all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchboard.settings import process_alive

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client picks its value class once, when it is first imported: this is what the
# metrics of this process actually do, whatever the environment says now.
MULTIPROCESS = values.ValueClass is not values.MutexValue
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


class ScrapeGauge(Collector):
    """A gauge whose values a refresher computes from the database just before a scrape
    (``labels(...).set(v)``, ``clear()``), served as-is by the process that answers."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        _SCRAPE_GAUGES.append(self)
        if not MULTIPROCESS:
            REGISTRY.register(self)

    def labels(self, *labelvalues: str) -> _ScrapeChild:
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}")
        return _ScrapeChild(self._values, tuple(str(v) for v in labelvalues))

    def clear(self) -> None:
        self._values.clear()

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labelvalues, value in sorted(self._values.items()):
            family.add_metric(list(labelvalues), value)
        yield family


class _ScrapeChild:
    def __init__(self, store: dict[tuple[str, ...], float], key: tuple[str, ...]) -> None:
        self._store = store
        self._key = key

    def set(self, value: float) -> None:
        self._store[self._key] = float(value)


_SCRAPE_GAUGES: list[ScrapeGauge] = []


def prepare_multiprocess_dir(path: Path) -> None:
    """Make ``path`` ready before the processes that share it start: create it and remove the
    files of processes that no longer run (a new process reusing an old pid would otherwise
    continue its counts). Files of live processes stay: siblings may share the directory."""
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            file.unlink(missing_ok=True)


def _forget_dead_gauges(path: str) -> None:
    """``live*`` gauges must not count processes that died (a uvicorn worker restarted by its
    supervisor, a killed worker): drop their files, as ``mark_process_dead`` would."""
    for name in os.listdir(path):
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not process_alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), path)  # type: ignore[no-untyped-call]


def registry() -> CollectorRegistry:
    """What ``/metrics`` serves: this process's registry, or in multiprocess mode every process
    of the directory (plus the scrape-time gauges)."""
    if not MULTIPROCESS:
        return REGISTRY
    path = os.environ[MULTIPROC_DIR_ENV]
    _forget_dead_gauges(path)
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated, path=path)  # type: ignore[no-untyped-call]
    for gauge in _SCRAPE_GAUGES:
        aggregated.register(gauge)
    return aggregated


def render() -> tuple[bytes, str]:
    return generate_latest(registry()), CONTENT_TYPE_LATEST


HTTP_REQUESTS = Counter(
    "switchboard_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "switchboard_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

JOBS = ScrapeGauge(
    "switchboard_jobs", "Jobs by kind and state (succeeded excluded).", ["kind", "state"]
)
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
JOB_BATCH_FILL = Histogram(
    "switchboard_job_batch_fill_ratio",
    "Jobs handed to a batch handler per call, as a share of its batch size (1 = full).",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1),
)
USERS_PROPAGATED = Counter(
    "switchboard_users_propagated_total",
    "User changes the CRM confirmed (users.propagate jobs that succeeded with a change).",
    ["connection"],
)
USERS_CRM_CALLS = Counter(
    "switchboard_users_crm_calls_total",
    "Provider requests made to propagate user changes; divided by "
    "switchboard_users_propagated_total: calls per propagated change.",
    ["connection"],
)
JOB_RETRIES = Counter("switchboard_job_retries_total", "Job runs that will be retried.", ["kind"])
JOBS_DEAD = Counter("switchboard_jobs_dead_total", "Jobs that went dead.", ["kind"])
SCHEDULE_FIRES = Counter("switchboard_schedule_fires_total", "Schedule slots fired.", ["schedule"])

WEBHOOK_DELIVERIES = Counter(
    "switchboard_webhook_deliveries_total",
    "Inbound webhook deliveries by connection and outcome.",
    ["connection", "outcome"],
)
TASKS = ScrapeGauge("switchboard_tasks", "Tasks by state.", ["state"])
REPORT_RUNS = Counter("switchboard_report_runs_total", "Report runs by outcome.", ["outcome"])
REPORT_DURATION = Histogram(
    "switchboard_report_duration_seconds",
    "Time to compute and write one report window.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
