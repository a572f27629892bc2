"""The admin API and CLI for jobs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from switchboard.cli import app as cli
from switchboard.db import Database
from switchboard.jobs import enqueue
from switchboard.models import Job
from tests.support import Backend


async def make_dead(db: Database, kind: str = "crm.push", error: str = "400 bad") -> int:
    async with db.session() as session:
        job_id = await enqueue(session, kind, {"user": "u1"}, key="u1")
        job = await session.get(Job, job_id)
        assert job is not None
        job.state = "dead"
        job.attempts = 3
        job.last_error = error
    return job_id


async def test_list_filter_get_and_retry(client: httpx.AsyncClient, db: Database) -> None:
    dead = await make_dead(db)
    async with db.session() as session:
        pending = await enqueue(session, "other.kind", {})

    r = await client.get("/admin/jobs", params={"state": "dead"})
    assert r.status_code == 200
    [item] = r.json()["items"]
    assert item["id"] == dead and item["last_error"] == "400 bad" and item["state"] == "dead"

    r = await client.get("/admin/jobs", params={"kind": "other.kind"})
    assert [i["id"] for i in r.json()["items"]] == [pending]

    r = await client.get("/admin/jobs", params={"limit": 1})
    assert len(r.json()["items"]) == 1 and r.json()["next_cursor"] == str(pending)
    r = await client.get("/admin/jobs", params={"limit": 1, "cursor": r.json()["next_cursor"]})
    assert [i["id"] for i in r.json()["items"]] == [dead]

    assert (await client.get(f"/admin/jobs/{dead}")).json()["kind"] == "crm.push"

    r = await client.post(f"/admin/jobs/{dead}/retry")
    assert r.status_code == 200
    assert r.json()["state"] == "pending" and r.json()["attempts"] == 0


async def test_error_statuses(client: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as session:
        pending = await enqueue(session, "k", {})
    r = await client.post(f"/admin/jobs/{pending}/retry")
    assert r.status_code == 409 and "only dead jobs" in r.json()["detail"]
    assert (await client.post("/admin/jobs/999999/retry")).status_code == 404
    assert (await client.get("/admin/jobs/999999")).json() == {"detail": "No job 999999"}
    r = await client.get("/admin/jobs", params={"state": "exploded"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "state"]
    assert (await client.get("/admin/jobs", params={"cursor": "x"})).status_code == 422
    assert (await client.get("/admin/jobs", headers={"X-API-Key": "nope"})).status_code == 401


async def test_queue_depth_metrics(client: httpx.AsyncClient, db: Database) -> None:
    await make_dead(db, kind="crm.push")
    text = (await client.get("/metrics")).text
    assert 'switchboard_jobs{kind="crm.push",state="dead"} 1.0' in text


@pytest.fixture
def cli_env(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in backend.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "json")
    monkeypatch.chdir(tmp_path)


async def test_cli_list_and_retry(db: Database, cli_env: None) -> None:
    dead = await make_dead(db, error="HubSpot said 400")
    runner = CliRunner()
    # The CLI runs its own event loop: call it from a thread, as a shell would from outside.
    import asyncio

    out = await asyncio.to_thread(runner.invoke, cli, ["jobs", "list", "--state", "dead"])
    assert out.exit_code == 0, out.output
    assert str(dead) in out.output and "HubSpot said 400" in out.output

    out = await asyncio.to_thread(runner.invoke, cli, ["jobs", "retry", "--all-dead"])
    assert out.exit_code == 0 and f"replayed 1 job(s): {dead}" in out.output
    out = await asyncio.to_thread(runner.invoke, cli, ["jobs", "retry", str(dead)])
    assert out.exit_code == 1 and "only dead jobs" in out.output
