"""Scale-out on PostgreSQL: 2 API processes and 2 worker processes on one database, plus the
sandbox, driven across both APIs while one worker is killed with SIGKILL.

What must hold afterwards: every accepted webhook applied exactly once in effect; every user's
CRM contact at the user's latest state; the contacts store equal to the CRM; each schedule slot
fired once; each report window written once, with no gap; ``/search`` identical on both APIs
within a second of an ingest; metrics of every process aggregated by either API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook

from switchboard.connectors.hubspot.simulator import PRIVATE_APP_TOKEN
from switchboard.connectors.todo_webhooks.simulator import WEBHOOK_SECRET
from switchboard.connectors.xml_feed.simulator import FEED_PATH
from switchboard.db import Database
from switchboard.models import Job, ReportCursor, Schedule, WebhookDelivery
from tests.acceptance.cluster import (
    Cluster,
    client,
    free_port,
    log_events,
    wait_healthy,
    wait_logged,
)
from tests.support import API_KEY, Backend, eventually, switchboard_env

PG_URL = os.environ.get("SWITCHBOARD_TEST_DATABASE_URL")

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(not PG_URL, reason="scale-out runs on PostgreSQL only"),
]

REPORT_INTERVAL = timedelta(seconds=2)
LEASE_SECONDS = "2"
USERS = 16
ROUNDS = 5
EMAIL_CHANGE_ROUND = 3
TASKS = 30
TASK_OWNERS = 4


@pytest.fixture
async def pg_backend() -> AsyncIterator[Backend]:
    assert PG_URL
    schema = f"scale_{uuid.uuid4().hex[:12]}"
    yield Backend(PG_URL, schema)
    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await engine.dispose()


@pytest.fixture
def cluster(pg_backend: Backend, tmp_path: Path) -> Iterator[Cluster]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = switchboard_env(
        pg_backend,
        tmp_path,
        SWITCHBOARD_CONFIG=str(tmp_path / "switchboard.toml"),
        SWITCHBOARD_JOB_LEASE_SECONDS=LEASE_SECONDS,
        SWITCHBOARD_DATABASE_POOL_SIZE="4",
        SWITCHBOARD_ACCESS_LOG="false",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PYTHONUNBUFFERED="1",
    )
    env.pop("SWITCHBOARD_JOB_MODULES", None)
    running = Cluster(tmp_path, env)
    yield running
    running.stop()


def connections_file(path: Path, urls: dict[str, str], reports: Path) -> None:
    path.write_text(
        f"""
[server]
api_keys = ["{API_KEY}"]

[connections.hubspot]
kind = "hubspot"
base_url = "{urls["hubspot"]}"
auth = {{ type = "token", token = "{PRIVATE_APP_TOKEN}" }}
sync_interval = "1d"

[connections.events]
kind = "xml_feed"
url = "{urls["events"]}{FEED_PATH}"
interval = "1d"

[connections.todo]
kind = "todo_webhooks"
secret = "{WEBHOOK_SECRET}"

[contacts]
default_connection = "hubspot"

[users]
crm_connection = "hubspot"

[reports]
interval = "{REPORT_INTERVAL.total_seconds():g}s"
settle = "0s"
dir = "{reports}"
"""
    )


# --- traffic ---------------------------------------------------------------------------------


@dataclass
class TaskEvent:
    webhook_id: str
    body: bytes

    def headers(self) -> dict[str, str]:
        now = datetime.now(UTC)
        signature = Webhook(WEBHOOK_SECRET).sign(self.webhook_id, now, self.body.decode())
        return {
            "webhook-id": self.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }


def task_event(kind: str, task: int, content: str, completed: bool = False) -> TaskEvent:
    body = {
        "event": kind,
        "timestamp": datetime.now(UTC).isoformat(),
        "metadata": {
            "userId": f"owner-{task % TASK_OWNERS}",
            "id": f"task-{task}",
            "content": content,
            "isCompleted": completed,
        },
    }
    return TaskEvent(f"msg_{uuid.uuid4().hex}", json.dumps(body).encode())


class Traffic:
    def __init__(self, apis: list[httpx.AsyncClient]) -> None:
        self.apis = apis
        self.sent: list[TaskEvent] = []  # every distinct event, in the order it was first sent
        self.webhook_requests = 0
        self.patches = 0
        self.expected_tasks: dict[str, dict[str, Any]] = {}
        self.expected_users: dict[str, dict[str, str]] = {}

    async def deliver(self, event: TaskEvent, api: httpx.AsyncClient) -> None:
        self.webhook_requests += 1
        answer = await api.post("/webhooks/todo", content=event.body, headers=event.headers())
        assert answer.status_code == 202, answer.text

    async def task_life(self, task: int) -> None:
        """Created, edited, then completed, deleted or left open; events alternate between the
        APIs, and every other one is also redelivered to the other API at the same moment."""
        events = [
            task_event("created", task, f"task {task} v0"),
            task_event("updated", task, f"task {task} v1"),
        ]
        if task % 3 == 0:
            events.append(task_event("updated", task, f"task {task} v1", completed=True))
        elif task % 3 == 1:
            events.append(task_event("deleted", task, f"task {task} v1"))
        for step, event in enumerate(events):
            self.sent.append(event)
            first, other = self.apis[(task + step) % 2], self.apis[(task + step + 1) % 2]
            if (task + step) % 2:
                await asyncio.gather(self.deliver(event, first), self.deliver(event, other))
            else:
                await self.deliver(event, first)
        stamps = [json.loads(e.body)["timestamp"] for e in events]
        self.expected_tasks[f"task-{task}"] = {
            "userId": f"owner-{task % TASK_OWNERS}",
            "content": f"task {task} v1",
            "state": ("completed", "deleted", "open")[task % 3],
            "createdAt": datetime.fromisoformat(stamps[0]),
            "completedAt": datetime.fromisoformat(stamps[2]) if task % 3 == 0 else None,
            "deletedAt": datetime.fromisoformat(stamps[2]) if task % 3 == 1 else None,
        }

    async def redeliver_all(self) -> None:
        """Late redeliveries of every event (an hour-old duplicate is still acknowledged)."""
        for i, event in enumerate(self.sent):
            await self.deliver(event, self.apis[i % 2])

    async def user_round(self, r: int) -> None:
        """Each user changed through both APIs at once: first name on one, last name on the
        other (the email, required, is the same), so the two changes must both survive."""

        async def patch(user: int) -> None:
            email = f"scale-{user}{'-b' if r >= EMAIL_CHANGE_ROUND else ''}@example.com"
            a, b = await asyncio.gather(
                self.apis[user % 2].patch(
                    f"/users/user-{user}", json={"email": email, "firstName": f"First{r}"}
                ),
                self.apis[(user + 1) % 2].patch(
                    f"/users/user-{user}", json={"email": email, "lastName": f"Last{r}"}
                ),
            )
            assert a.status_code == b.status_code == 200, (a.text, b.text)
            self.patches += 2
            self.expected_users[f"user-{user}"] = {
                "email": email,
                "firstName": f"First{r}",
                "lastName": f"Last{r}",
            }

        await asyncio.gather(*(patch(u) for u in range(USERS)))


# --- checks ----------------------------------------------------------------------------------


async def run_sync(api: httpx.AsyncClient, db: Database, name: str, timeout: float = 30) -> int:
    """Queue a sync through ``api`` and wait for its job to succeed; returns the job id."""
    answer = await api.post(f"/connections/{name}/sync")
    assert answer.status_code == 202, answer.text
    job_id = int(answer.json()["job_id"])

    async def done() -> bool:
        async with db.read_session() as session:
            job = await session.get(Job, job_id)
            assert job is not None and job.state != "dead", job and job.last_error
            return job.state == "succeeded"

    await eventually(done, timeout=timeout, interval=0.05)
    return job_id


async def search_converges(apis: list[httpx.AsyncClient], previous: bytes | None) -> bytes:
    """Right after an ingest, both APIs answer ``/search`` identically within a second, with
    the new document's plans."""
    ingested = time.monotonic()
    while True:
        bodies = [(await api.get("/search")).content for api in apis]
        fresh = bodies[0] != previous and json.loads(bodies[0])["data"]["events"]
        if fresh and bodies[0] == bodies[1]:
            return bodies[0]
        assert time.monotonic() - ingested < 1.0, f"/search differs 1 s after an ingest: {bodies}"
        await asyncio.sleep(0.02)


async def hubspot_contacts(base_url: str) -> dict[str, dict[str, Any]]:
    """Every live contact in the HubSpot simulator, through its public API."""
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 100, "properties": "email,firstname,lastname"}
    headers = {"Authorization": f"Bearer {PRIVATE_APP_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as hubspot:
        while True:
            page = (await hubspot.get("/crm/v3/objects/contacts", params=params)).json()
            for record in page["results"]:
                found[record["id"]] = record["properties"]
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return found
            params["after"] = after


async def store_contacts(api: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 500}
    while True:
        page = (await api.get("/contacts", params=params)).json()
        for item in page["items"]:
            assert item["connection"] == "hubspot"
            found[item["externalId"]] = item
        if not page["next_cursor"]:
            return found
        params["cursor"] = page["next_cursor"]


def sample_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the test --------------------------------------------------------------------------------


async def test_two_apis_two_workers_one_killed(
    cluster: Cluster, pg_backend: Backend, tmp_path: Path
) -> None:
    started = time.monotonic()
    sandbox, urls = cluster.sandbox("--contacts", "40")
    reports = tmp_path / "reports"
    connections_file(tmp_path / "switchboard.toml", urls, reports)
    ports = [free_port(), free_port()]
    api_procs = [cluster.api(f"api{i}", port, "--no-runtime") for i, port in enumerate(ports)]
    workers = [cluster.worker("worker0"), cluster.worker("worker1")]
    for proc, url in api_procs:
        wait_healthy(proc, url)
    for proc in workers:
        wait_logged(proc, "worker_started")

    async with httpx.AsyncClient(base_url=urls["hubspot"], timeout=10) as hubspot_control:
        # Rate limits are tested elsewhere; here they would only make the test slow.
        limits = {"per_interval": 100_000, "search_per_second": 1_000}
        assert (await hubspot_control.patch("/_sandbox/hubspot/limits", json=limits)).is_success

    db = Database(PG_URL or "", schema=pg_backend.schema, pool_size=2)
    apis = [client(url) for _, url in api_procs]
    traffic = Traffic(apis)
    try:
        # Feed ingest: both APIs serve the same plans within a second.
        await run_sync(apis[0], db, "events")
        first_search = await search_converges(apis, None)

        tasks = asyncio.gather(*(traffic.task_life(t) for t in range(TASKS)))
        for r in range(2):
            await traffic.user_round(r)
        await run_sync(apis[1], db, "hubspot")  # a contacts sync while users propagate

        # Kill a worker while it holds jobs: slow the CRM so its jobs are in flight.
        async with httpx.AsyncClient(base_url=urls["hubspot"], timeout=10) as hubspot_control:
            faults = {"latency_ms": 300}
            assert (await hubspot_control.put("/_sandbox/faults", json=faults)).is_success
            prefixes = {f"{socket.gethostname()}:{w.proc.pid}:": w for w in workers}
            round_two = asyncio.ensure_future(traffic.user_round(2))
            busy: list[str] = []

            async def a_worker_busy() -> bool:
                # Whichever worker claimed users' jobs (one batch may take a whole round) is
                # the victim: the test needs jobs in flight in the process it kills.
                async with db.read_session() as session:
                    holders = await session.scalars(
                        select(Job.worker).where(
                            Job.state == "running",
                            Job.kind == "users.propagate",  # slowed down: surely in flight
                        )
                    )
                    for holder in holders:
                        busy.extend(p for p in prefixes if (holder or "").startswith(p))
                return bool(busy)

            await eventually(a_worker_busy, timeout=20, interval=0.01)
            name_prefix = busy[0]
            victim = prefixes[name_prefix]
            victim.kill()
            async with db.read_session() as session:
                orphaned = (
                    await session.scalars(
                        select(Job.id).where(
                            Job.state == "running", Job.worker.startswith(name_prefix)
                        )
                    )
                ).all()
            assert orphaned
            await round_two
            assert (await hubspot_control.delete("/_sandbox/faults")).is_success

        for r in range(3, ROUNDS):
            await traffic.user_round(r)
        await tasks
        await traffic.redeliver_all()
        # Every task event is stored by now (the receiver applies it before answering). A
        # window that starts later holds all of them; one that starts between an event's
        # timestamp and its (slow, on a loaded machine) delivery may not: ``settle = 0s``.
        acknowledged = datetime.now(UTC)

        # A second ingest (the next sample document): both APIs follow it within a second.
        await run_sync(apis[1], db, "events")
        second_search = await search_converges(apis, first_search)
        assert second_search != first_search

        # --- every user's CRM contact at its latest state ----------------------------------
        async def users_synced() -> bool:
            page = (await apis[1].get("/users", params={"limit": 500})).json()["items"]
            for user in page:
                assert user["sync"]["state"] in ("pending", "synced"), user
            return len(page) == USERS and all(u["sync"]["state"] == "synced" for u in page)

        await eventually(users_synced, timeout=40, interval=0.1)
        users = {u["id"]: u for u in (await apis[0].get("/users?limit=500")).json()["items"]}
        crm = await hubspot_contacts(urls["hubspot"])
        for user_id, expected in traffic.expected_users.items():
            user = users[user_id]
            assert {k: user[k] for k in ("email", "firstName", "lastName")} == expected
            contact = crm[user["sync"]["crmContactId"]]
            assert contact["email"] == expected["email"]
            assert contact["firstname"] == expected["firstName"], user_id
            assert contact["lastname"] == expected["lastName"], user_id
        emails = Counter(c["email"] for c in crm.values())
        assert all(emails[u["email"]] == 1 for u in traffic.expected_users.values())

        # The killed worker's jobs were run again by the survivor once their leases lapsed.
        async with db.read_session() as session:
            rerun = (await session.scalars(select(Job).where(Job.id.in_(orphaned)))).all()

        # Each was run again by the survivor, or superseded by a newer pending job of its user
        # (which carries the newest state); only a commit the victim sent just before it died
        # may have landed after the snapshot.
        def recovered(job: Job) -> bool:
            return job.attempts >= 2 or "lease expired" in (job.last_error or "")

        for job in rerun:
            assert job.state == "succeeded", (job.kind, job.state, job.last_error)
            assert recovered(job) or (job.worker or "").startswith(name_prefix)
        assert any(recovered(job) for job in rerun)
        async with db.read_session() as session:
            dead = (await session.scalars(select(Job).where(Job.state == "dead"))).all()
        assert not dead, [(j.kind, j.last_error) for j in dead]

        # --- the contacts store equals the CRM ------------------------------------------------
        await run_sync(apis[0], db, "hubspot")
        crm = await hubspot_contacts(urls["hubspot"])
        stored = await store_contacts(apis[1])
        assert len(crm) == 40 + USERS
        assert {i: (c["email"], c["firstName"], c["lastName"]) for i, c in stored.items()} == {
            i: (c["email"], c["firstname"], c["lastname"]) for i, c in crm.items()
        }

        # --- every accepted webhook applied exactly once --------------------------------------
        listed: dict[str, dict[str, Any]] = {}
        for state in ("open", "completed", "deleted"):
            page = await apis[1].get("/tasks", params={"state": state, "limit": 500})
            for item in page.json()["items"]:
                assert item["state"] == state
                listed[item["id"]] = item
        assert set(listed) == set(traffic.expected_tasks)
        for task_id, expected in traffic.expected_tasks.items():
            item = listed[task_id]
            assert item["userId"] == expected["userId"]
            assert item["content"] == expected["content"]
            assert item["state"] == expected["state"]
            for field in ("createdAt", "completedAt", "deletedAt"):
                got = item[field] and parse_time(item[field])
                assert got == expected[field], (task_id, field)
        async with db.read_session() as session:
            rows = (
                await session.execute(
                    select(WebhookDelivery.dedupe_key, WebhookDelivery.outcome).where(
                        WebhookDelivery.connection == "todo"
                    )
                )
            ).all()
        assert len(rows) == traffic.webhook_requests
        applied = Counter(key for key, _ in rows if key.startswith("webhook-id:"))
        assert applied == Counter(f"webhook-id:{e.webhook_id}" for e in traffic.sent)
        outcomes = Counter(outcome for _, outcome in rows)
        assert outcomes["redelivery"] == traffic.webhook_requests - len(traffic.sent)

        # --- metrics: either API shows every process's counts ----------------------------------
        for api in apis:
            text = (await api.get("/metrics")).text
            patched = sample_value(
                text,
                "switchboard_http_requests_total",
                method="PATCH",
                route="/users/{user_id}",
                status="200",
            )
            assert patched == traffic.patches
            delivered = sample_value(
                text, "switchboard_webhook_deliveries_total", connection="todo"
            )
            assert delivered == traffic.webhook_requests

        # --- reports: wait for two windows after the last event, then stop the runtime --------
        last_event = max(
            acknowledged, *(parse_time(json.loads(e.body)["timestamp"]) for e in traffic.sent)
        )

        async def windows_written() -> bool:
            async with db.read_session() as session:
                cursor = await session.get(ReportCursor, "tasks")
            return cursor is not None and cursor.window_end >= last_event + 2 * REPORT_INTERVAL

        await eventually(windows_written, timeout=20, interval=0.1)
        survivor = next(w for w in workers if w is not victim)
        assert survivor.stop() == 0, survivor.output()
        await check_reports(db, apis, reports, workers, last_event)
        await check_schedule_slots(db, tmp_path / "metrics")
    finally:
        for api in apis:
            await api.aclose()
        await db.dispose()
    assert time.monotonic() - started < 90, "the scale-out test should stay under 90 s"
    assert sandbox.proc.poll() is None


async def check_reports(
    db: Database,
    apis: list[httpx.AsyncClient],
    reports: Path,
    workers: list[Any],
    last_event: datetime,
) -> None:
    """Each window written once: the windows the runtime logged are contiguous, each logged
    exactly once across both workers (the killed one too), up to the cursor; every file belongs
    to one of them; windows after the last event hold exactly what the API computes now."""
    logged = Counter(
        (parse_time(e["start"]), parse_time(e["end"]))
        for proc in workers
        for e in log_events(proc)
        if e.get("event") == "report_window_written"
    )
    assert logged, "no report window was written"
    assert all(count == 1 for count in logged.values()), logged
    windows = sorted(logged)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end == start, f"gap or overlap between report windows at {end}"
    assert all(end - start == REPORT_INTERVAL for start, end in windows)
    async with db.read_session() as session:
        cursor = await session.get(ReportCursor, "tasks")
    assert cursor is not None and cursor.window_end == windows[-1][1]

    files: dict[tuple[str, datetime, datetime], dict[str, Any]] = {}
    for path in reports.glob("task_report_*.json"):
        report = json.loads(path.read_text())
        period = (parse_time(report["period"]["start"]), parse_time(report["period"]["end"]))
        assert period in logged, f"{path.name} is not from a written window"
        files[(report["userId"], *period)] = report
    owners = [f"owner-{o}" for o in range(TASK_OWNERS)]
    settled = [(s, e) for s, e in windows if s > last_event]
    assert len(settled) >= 2
    for start, end in settled:
        for owner in owners:  # every owner has open tasks: one file per owner per window
            query = {"userId": owner, "start": start.isoformat(), "end": end.isoformat()}
            computed = (await apis[0].get("/reports/tasks", params=query)).json()
            assert files[(owner, start, end)] == computed


async def check_schedule_slots(db: Database, metrics_dir: Path) -> None:
    """Each slot of the report schedule fired once: the slots named by its jobs are distinct
    and aligned, and the fires counted by every process (read from the shared multiprocess
    metrics directory, so the killed worker's count is included) match the slots spanned."""
    async with db.read_session() as session:
        schedule = await session.get(Schedule, "reports.tasks")
        payloads = (
            await session.scalars(select(Job.payload).where(Job.kind == "reports.tasks"))
        ).all()
    assert schedule is not None and schedule.last_slot is not None
    slots = [parse_time(p["slot"]) for p in payloads]
    assert len(slots) == len(set(slots)), "a slot was enqueued twice"
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert all((slot - epoch) % REPORT_INTERVAL == timedelta(0) for slot in slots)
    assert max(slots) == schedule.last_slot
    spanned = (schedule.last_slot - min(slots)) // REPORT_INTERVAL + 1

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    fired = registry.get_sample_value(
        "switchboard_schedule_fires_total", {"schedule": "reports.tasks"}
    )
    assert fired == spanned, f"{fired} fires for {spanned} slots"
