"""Custom fields through ``/contacts``: a HubSpot connection maps ``title`` and ``stage`` to the
``jobtitle`` and ``lifecyclestage`` properties; syncs read them, the list filters on them, and
writes reach the simulator's stored properties."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.sandbox import AcmeSimulator, Sandbox, zero_config
from tests.contacts.conftest import SyncNow, all_contacts

CUSTOM = {"title": "jobtitle", "stage": "lifecyclestage"}


@pytest.fixture
def hub_config(box: Sandbox) -> HubConfig:
    data = zero_config(box.urls)
    data["connections"]["acme"].pop("rate_limit")
    data["connections"]["hubspot"]["custom_fields"] = CUSTOM
    return HubConfig.model_validate(data)


def _by_external(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["externalId"]: i for i in items}


async def test_a_hubspot_sync_reads_custom_fields_and_the_list_filters_on_them(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(6)
    for contact_id in (1, 3, 5):
        hubspot.ui_update(contact_id, {"jobtitle": "CTO"})
    hubspot.ui_update(2, {"jobtitle": "CEO", "lifecyclestage": "lead"})
    _, _, error = await sync_now()
    assert error is None, error
    items = _by_external(await all_contacts(client))
    assert items["1"]["fields"] == {"title": "CTO", "stage": None}
    assert items["2"]["fields"] == {"title": "CEO", "stage": "lead"}
    assert items["4"]["fields"] == {"title": None, "stage": None}  # every name, null when empty
    one = (await client.get(f"/contacts/{items['2']['id']}")).json()
    assert one["fields"] == {"title": "CEO", "stage": "lead"}

    # Exact match, combined with other filters, page by page with the cursor.
    pages, cursor = [], None
    while True:
        params = {"fields.title": "CTO", "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/contacts", params=params)).json()
        pages.append([i["externalId"] for i in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(i for p in pages for i in p) == ["1", "3", "5"]
    assert all(len(p) == 1 for p in pages)
    both = await all_contacts(client, **{"fields.title": "CEO", "fields.stage": "lead"})
    assert [i["externalId"] for i in both] == ["2"]
    assert await all_contacts(client, **{"fields.title": "cto"}) == []  # exact, case included
    assert await all_contacts(client, **{"fields.title": "CTO", "connection": "hubspot"})

    # A change in HubSpot reaches the store through the incremental sync.
    hubspot.ui_update(1, {"jobtitle": ""})
    hubspot.ui_update(4, {"lifecyclestage": "customer"})
    _, _, error = await sync_now()
    assert error is None, error
    items = _by_external(await all_contacts(client))
    assert items["1"]["fields"] == {"title": None, "stage": None}
    assert items["4"]["fields"] == {"title": None, "stage": "customer"}
    matching = await all_contacts(client, **{"fields.title": "CTO"})
    assert sorted(i["externalId"] for i in matching) == ["3", "5"]


async def test_an_unknown_custom_field_in_a_filter_is_422_naming_it(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/contacts", params={"fields.plan": "gold"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "fields.plan"]
    assert "'plan'" in r.json()["detail"][0]["msg"]
    # Configured on hubspot, not on acme: unknown when filtering acme's contacts.
    r = await client.get("/contacts", params={"fields.title": "CTO", "connection": "acme"})
    assert r.status_code == 422 and "'title'" in r.json()["detail"][0]["msg"]


async def test_writes_create_update_and_clear_custom_fields_in_hubspot(
    hubspot: HubSpotSimulator, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/contacts",
        json={"email": "ada@example.com", "firstName": "Ada", "fields": {"title": "Countess"}},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["fields"] == {"title": "Countess", "stage": None}
    remote = hubspot.store.get(int(body["externalId"]))
    assert remote is not None and remote.properties["jobtitle"] == "Countess"

    patched = await client.patch(f"/contacts/{body['id']}", json={"fields": {"stage": "lead"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["fields"] == {"title": "Countess", "stage": "lead"}
    assert remote.properties["lifecyclestage"] == "lead"
    assert remote.properties["jobtitle"] == "Countess" and remote.properties["firstname"] == "Ada"

    cleared = await client.patch(f"/contacts/{body['id']}", json={"fields": {"title": None}})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["fields"] == {"title": None, "stage": "lead"}
    assert "jobtitle" not in remote.properties and remote.properties["lifecyclestage"] == "lead"

    # PUT replaces every field: an omitted custom field is cleared too.
    put = await client.put(
        f"/contacts/{body['id']}",
        json={"email": "ada@example.com", "firstName": "Ada", "fields": {"title": "Analyst"}},
    )
    assert put.status_code == 200, put.text
    assert put.json()["fields"] == {"title": "Analyst", "stage": None}
    assert remote.properties["jobtitle"] == "Analyst" and "lifecyclestage" not in remote.properties
    stored = (await client.get(f"/contacts/{body['id']}")).json()
    assert stored["fields"] == {"title": "Analyst", "stage": None}
    assert [i["externalId"] for i in await all_contacts(client, **{"fields.title": "Analyst"})] == [
        body["externalId"]
    ]


async def test_an_unknown_custom_field_in_a_write_is_422_and_never_reaches_the_crm(
    hubspot: HubSpotSimulator, acme: AcmeSimulator, client: httpx.AsyncClient
) -> None:
    r = await client.post("/contacts", json={"email": "a@example.com", "fields": {"plan": "x"}})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "fields", "plan"]
    assert "'plan'" in r.json()["detail"][0]["msg"]
    # A standard field belongs at the top level, not under fields.
    r = await client.post("/contacts", json={"email": "a@example.com", "fields": {"email": "x"}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "fields"]
    assert hubspot.log.count() == 0

    created = await client.post("/contacts", json={"email": "b@example.com"})
    assert created.status_code == 201, created.text
    r = await client.patch(
        f"/contacts/{created.json()['id']}", json={"fields": {"title": "x", "plan": None}}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fields", "plan"]
    assert hubspot.log.count() == 1  # the create only

    # acme configures no custom field: hubspot's are unknown there.
    made = await client.post("/contacts", json={"email": "c@example.com", "connection": "acme"})
    assert made.status_code == 201, made.text
    assert made.json()["fields"] == {}
    calls = acme.log.count()
    r = await client.patch(f"/contacts/{made.json()['id']}", json={"fields": {"title": "x"}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fields", "title"]
    assert acme.log.count() == calls
