"""CRM webhooks: HubSpot (v3 signatures) and ACME (HMAC) deliveries reach the store through
refresh jobs that re-read the contact; signatures are checked, replays have no second effect."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from switchboard.connectors.hubspot.simulator import CLIENT_SECRET, HubSpotSimulator, sign_v3
from switchboard.connectors.mapped_crm.simulators.acme import sign as acme_sign
from switchboard.db import Database
from switchboard.models import Job, WebhookDelivery
from switchboard.sandbox import AcmeSimulator
from tests.contacts.conftest import SyncNow, all_contacts, hub_view, simulator_view
from tests.support import eventually


@pytest.fixture
def runtime_enabled() -> bool:
    return True


def _event(object_id: int, kind: str = "contact.propertyChange", **extra: Any) -> dict[str, Any]:
    return {
        "eventId": 1,
        "subscriptionId": 1002,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        **extra,
    }


def _signed(
    url: str, body: bytes, *, timestamp: int | None = None, secret: str = CLIENT_SECRET
) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, ts),
    }


async def test_hubspot_changes_reach_the_store_through_webhooks(
    hubspot: HubSpotSimulator, hub_url: str, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(20)
    await sync_now()
    hubspot.webhooks.configure(url=hub_url + "/webhooks/hubspot", shuffle=True, duplicate_rate=0.5)
    created = hubspot.ui_create({"email": "hook@example.com", "firstname": "Hook"})
    hubspot.ui_update(3, {"lastname": "Renamed", "company": "Initech"})
    hubspot.ui_delete(4)

    async def caught_up() -> bool:
        return hub_view(await all_contacts(client)) == simulator_view(hubspot)

    await eventually(caught_up, timeout=15)
    items = {i["externalId"]: i for i in await all_contacts(client, include_deleted="true")}
    assert items[created["id"]]["firstName"] == "Hook"
    assert items["4"]["deletedAt"] is not None
    stats = hubspot.webhooks.outbox.stats()
    assert stats.get("failed", 0) == 0


async def test_a_merge_refreshes_the_primary_and_deletes_the_merged_contacts(
    hubspot: HubSpotSimulator, hub_url: str, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(3)
    await sync_now()
    hubspot.webhooks.configure(url=hub_url + "/webhooks/hubspot")
    hubspot.ui_merge(1, 2)  # contact.merge: objectId 1, mergedObjectIds [2]

    async def caught_up() -> bool:
        return hub_view(await all_contacts(client)) == simulator_view(hubspot)

    await eventually(caught_up, timeout=15)
    items = {i["externalId"]: i for i in await all_contacts(client, include_deleted="true")}
    assert items["2"]["deletedAt"] is not None and items["1"]["deletedAt"] is None


async def test_signature_accept_reject_stale_and_replay(
    hubspot: HubSpotSimulator,
    hub_url: str,
    db: Database,
    sync_now: SyncNow,
    client: httpx.AsyncClient,
) -> None:
    hubspot.store.seed(3)
    await sync_now()
    hubspot.ui_update(2, {"firstname": "Signed"})
    url = hub_url + "/webhooks/hubspot"
    body = json.dumps([_event(2, propertyName="firstname", propertyValue="Signed")]).encode()
    async with httpx.AsyncClient() as http:
        bad = await http.post(url, content=body, headers=_signed(url, body, secret="wrong"))
        assert bad.status_code == 401 and bad.headers["content-type"] == "application/json"
        stale_ts = int(time.time() * 1000) - 6 * 60 * 1000
        stale = await http.post(url, content=body, headers=_signed(url, body, timestamp=stale_ts))
        assert stale.status_code == 401
        unsigned = await http.post(url, content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401
        start = time.monotonic()
        ok = await http.post(url, content=body, headers=_signed(url, body))
        assert ok.status_code == 200 and time.monotonic() - start < 1.0
        replay = await http.post(url, content=body, headers=_signed(url, body))
        assert replay.status_code == 200

    async def refreshed() -> bool:
        items = {i["externalId"]: i for i in await all_contacts(client)}
        return items["2"]["firstName"] == "Signed"

    await eventually(refreshed, timeout=10)
    async with db.read_session() as session:
        outcomes = (
            await session.execute(
                select(WebhookDelivery.outcome, func.count())
                .where(WebhookDelivery.connection == "hubspot")
                .group_by(WebhookDelivery.outcome)
            )
        ).all()
        jobs = await session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == "contacts.refresh")
        )
    assert dict(outcomes) == {"bad_signature": 3, "accepted": 1, "duplicate": 1}
    assert jobs == 1  # the replay enqueued nothing


async def test_an_old_event_never_overwrites_newer_data(
    hubspot: HubSpotSimulator, hub_url: str, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(2)
    hubspot.ui_update(1, {"firstname": "Newest"})
    await sync_now()
    # A late, redelivered event from long ago: the job re-reads HubSpot and the store keeps the
    # newest state (the re-read is not older than what is stored).
    url = hub_url + "/webhooks/hubspot"
    body = json.dumps(
        [_event(1, occurredAt=1_600_000_000_000, propertyName="firstname", propertyValue="Old")]
    ).encode()
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, content=body, headers=_signed(url, body))).status_code == 200
    hubspot.ui_update(1, {"lastname": "Later"})

    async def refreshed() -> bool:
        items = {i["externalId"]: i for i in await all_contacts(client)}
        return items["1"]["lastName"] == "Later"

    await eventually(refreshed, timeout=10)
    items = {i["externalId"]: i for i in await all_contacts(client)}
    assert items["1"]["firstName"] == "Newest"


async def test_acme_webhooks_are_verified_and_applied(
    acme: AcmeSimulator, hub_url: str, client: httpx.AsyncClient
) -> None:
    url = hub_url + "/webhooks/acme"
    acme.configure_webhooks(url=url)
    record = acme.create({"acme_email": "wh@example.com", "acme_first_name": "Web"})
    acme.update(record["id"], {"acme_last_name": "Hook"})
    other = acme.create({"acme_email": "gone@example.com"})
    acme.delete(other["id"])

    async def applied() -> bool:
        items = {i["externalId"]: i for i in await all_contacts(client, include_deleted="true")}
        return (
            items.get(record["id"], {}).get("name") == "Web Hook"
            and items.get(other["id"], {}).get("deletedAt") is not None
        ) or (items.get(record["id"], {}).get("name") == "Web Hook" and other["id"] not in items)

    await eventually(applied, timeout=10)
    body = json.dumps({"event": "contact.updated", "id": "e1", "payload": record}).encode()
    async with httpx.AsyncClient() as http:
        forged = await http.post(url, content=body, headers={"X-Acme-Signature": "sha256=00"})
        assert forged.status_code == 401
        signed = await http.post(
            url,
            content=body,
            headers={"X-Acme-Signature": acme_sign("acme-sandbox-webhook-secret", body)},
        )
        assert signed.status_code == 200
