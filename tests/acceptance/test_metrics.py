"""``switchboard serve --workers 2``: every scrape of ``/metrics``, whichever process answers it,
shows the counts of all the processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.cluster import Cluster, free_port, wait_healthy
from tests.support import API_KEY, Backend, switchboard_env, wait_until

pytestmark = pytest.mark.acceptance

HEALTH = "switchboard_http_requests_total"


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    return tmp_path / "metrics"


@pytest.fixture
def cluster(backend: Backend, tmp_path: Path, metrics_dir: Path) -> Iterator[Cluster]:
    env = switchboard_env(
        backend,
        tmp_path,
        SWITCHBOARD_API_KEYS=API_KEY,
        SWITCHBOARD_SANDBOX="false",
        SWITCHBOARD_ACCESS_LOG="false",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PYTHONUNBUFFERED="1",
    )
    running = Cluster(tmp_path, env)
    yield running
    running.stop()


def scraped_health_requests(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == HEALTH and sample.labels.get("route") == "/health"
    )


def health_requests_by_process(directory: Path) -> dict[str, float]:
    """What each process wrote to its own counter file (``counter_<pid>.db``)."""
    found: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = path.stem.rpartition("_")[2]
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == HEALTH and labels.get("route") == "/health":
                found[pid] = found.get(pid, 0.0) + value
    return found


def get(url: str, path: str) -> httpx.Response:
    """On a new connection, so that the kernel spreads requests over the processes."""
    with httpx.Client(base_url=url, timeout=10) as fresh:
        return fresh.get(path)


def test_every_scrape_counts_the_requests_of_all_processes(
    cluster: Cluster, metrics_dir: Path
) -> None:
    metrics_dir.mkdir()
    stale = metrics_dir / "counter_999999999.db"  # a process of an earlier run (no such pid)
    stale.write_bytes(b"\0" * 8)
    proc, url = cluster.api("api", free_port(), "--workers", "2", "--no-runtime")
    wait_healthy(proc, url)
    assert not stale.exists(), "serve must clear files of processes that are gone"

    sent = 0

    def both_served() -> bool:
        nonlocal sent
        assert get(url, "/health").status_code == 200
        sent += 1
        counts = health_requests_by_process(metrics_dir)
        # A process writes its entry (0) when it first meets the labels, then counts.
        return len(counts) == 2 and all(n > 0 for n in counts.values())

    def all_counted() -> bool:  # a request is counted just after its response is sent
        return sum(health_requests_by_process(metrics_dir).values()) >= sent

    wait_until(both_served, timeout=30, interval=0)
    wait_until(all_counted, timeout=10)
    # wait_healthy's probes are counted too, each just after its answer: wait until nothing
    # more lands (two reads 0.2 s apart agree), so that the total below is final.
    last: list[float] = []

    def settled() -> bool:
        last.append(sum(health_requests_by_process(metrics_dir).values()))
        return len(last) > 1 and last[-1] == last[-2]

    wait_until(settled, timeout=10, interval=0.2)
    per_process = health_requests_by_process(metrics_dir)
    total = sum(per_process.values())  # plus wait_healthy's probe(s)
    assert max(per_process.values()) < total

    # Each process alone saw only part of the requests; every scrape shows all of them.
    for _ in range(10):
        assert scraped_health_requests(get(url, "/metrics").text) == total
    assert proc.stop() == 0
