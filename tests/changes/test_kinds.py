"""An event of every kind, each produced by the real code path that causes it: a HubSpot sync
and a HubSpot webhook (contacts), user propagation (succeeded, failed, dead), a TODO webhook
(tasks), the scheduled report, a sync that fails, and the event feed's ingest (plans)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from switchboard.config import HubConfig, Settings
from switchboard.connectors.todo_webhooks.simulator import WEBHOOK_SECRET, EventName
from switchboard.sandbox import Sandbox, task_event, zero_config
from tests.changes.conftest import all_changes
from tests.contacts.conftest import hub_url  # noqa: F401 - the hub on a real port (webhooks)
from tests.support import API_KEY, Backend, eventually, make_settings


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(only=["hubspot", "events"])
    assert box.hubspot is not None
    box.hubspot.store.seed(2)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def hub_config(sandbox: Sandbox, tmp_path: Path) -> HubConfig:
    data = zero_config(sandbox.urls)
    data["connections"]["todo"] = {"kind": "todo_webhooks", "secret": WEBHOOK_SECRET}
    data["users"] |= {"create_missing": False, "retry_for": "1s"}
    data["reports"] = {"interval": "1s", "settle": "0.1s", "dir": str(tmp_path / "reports")}
    return HubConfig.model_validate(data)


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend,
        tmp_path,
        api_keys=[API_KEY],
        http_max_attempts=1,
        http_job_max_wait=0,
        http_breaker_cooldown=0.2,
    )


@pytest.fixture
def runtime_enabled() -> bool:
    return True


async def _wait_for(client: httpx.AsyncClient, type: str, **match: Any) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def seen() -> bool:
        found[:] = [
            e
            for e in await all_changes(client, type=type)
            if all(e.get(k) == v for k, v in match.items())
        ]
        return bool(found)

    await eventually(seen, timeout=20)
    return found[-1]


async def test_every_kind_comes_from_its_real_code_path(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    hub_url: str,  # noqa: F811
) -> None:
    hubspot = sandbox.hubspot
    assert hubspot is not None
    # The first syncs at start: contacts from HubSpot, plans from the feed.
    created = await _wait_for(client, "contact.created", connection="hubspot")
    assert created["data"]["contact"]["externalId"] in {"1", "2"}
    await _wait_for(client, "sync.succeeded", connection="hubspot")
    plan = await _wait_for(client, "event_plan.created", connection="events")
    assert plan["subject"] == f"event_plan:{plan['data']['plan']['id']}"

    # A CRM webhook: HubSpot tells the hub, the refresh job stores, the store emits.
    hubspot.webhooks.configure(url=hub_url + "/webhooks/hubspot")
    hubspot.ui_update(1, {"lastname": "Renamed"})
    updated = await _wait_for(client, "contact.updated")
    assert "lastName" in updated["data"]["changed"]
    assert updated["data"]["contact"]["lastName"] == "Renamed"

    # User propagation: an existing contact succeeds; create_missing=false refuses another.
    email = updated["data"]["contact"]["email"]
    assert (await client.patch("/users/u1", json={"email": email})).status_code == 200
    assert (
        await client.patch("/users/u2", json={"email": "nobody@example.com"})
    ).status_code == 200
    ok = await _wait_for(client, "user.sync.succeeded", subject="user:u1")
    assert ok["data"]["crmConnection"] == "hubspot"
    failed = await _wait_for(client, "user.sync.failed", subject="user:u2")
    assert failed["data"]["error"]

    # TODO webhooks: a task created, edited, completed, deleted.
    async def todo(event: EventName, content: str = "Write the report", done: bool = False) -> None:
        payload = task_event(event, user_id="7", task_id="t1", content=content, is_completed=done)
        body = json.dumps(payload)
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        r = await client.post(
            "/webhooks/todo",
            content=body.encode(),
            headers={
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, now, body),
                "content-type": "application/json",
            },
        )
        assert r.status_code == 202, r.text

    await todo("created")
    task = await _wait_for(client, "task.created", subject="task:todo:t1")
    assert task["data"]["task"]["content"] == "Write the report"
    await todo("updated", content="Write the whole report")
    edited = await _wait_for(client, "task.updated", subject="task:todo:t1")
    assert edited["data"]["task"]["content"] == "Write the whole report"
    await todo("updated", content="Write the whole report", done=True)
    done = await _wait_for(client, "task.completed", subject="task:todo:t1")
    assert done["data"]["task"]["state"] == "completed"
    await todo("deleted")
    await _wait_for(client, "task.deleted", subject="task:todo:t1")

    # A contact deleted in HubSpot, told by its webhook.
    hubspot.ui_delete(2)
    deleted = await _wait_for(client, "contact.deleted")
    assert deleted["data"]["contact"]["externalId"] == "2"

    # The feed's next document (the simulator rotates its samples): plans change and leave.
    assert (await client.post("/connections/events/sync")).status_code == 202
    await _wait_for(client, "event_plan.updated", connection="events")
    removed = await _wait_for(client, "event_plan.removed", connection="events")
    assert removed["data"]["plan"]["inFeed"] is False

    # The scheduled report (every second here).
    report = await _wait_for(client, "report.created")
    assert report["data"]["windowEnd"] > report["data"]["windowStart"]

    # HubSpot down: the sync fails, and a user's update keeps failing until it is dead.
    hubspot_api = httpx.AsyncClient(base_url=sandbox.urls["hubspot"])
    try:
        await hubspot_api.put("/_sandbox/faults", json={"error_rate": 1.0})
        assert (await client.post("/connections/hubspot/sync")).status_code == 202
        await _wait_for(client, "sync.failed", connection="hubspot")
        assert (
            await client.patch("/users/u1", json={"email": email, "firstName": "Later"})
        ).status_code == 200
        dead = await _wait_for(client, "user.sync.dead", subject="user:u1")
        assert dead["data"]["user"]["version"] >= 2
    finally:
        await hubspot_api.delete("/_sandbox/faults")
        await hubspot_api.aclose()
