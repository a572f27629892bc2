"""Users' custom fields propagate to the CRM connection's custom fields (``title`` →
HubSpot's ``jobtitle``), with the standard fields' rule: only what changed since the CRM was
last given it is sent, and a cleared field is sent as cleared."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.sandbox import Sandbox, zero_config
from tests.users.test_users import TOKEN, synced


@pytest.fixture
def hub_config(sandbox: Sandbox) -> HubConfig:
    data = zero_config(sandbox.urls)
    data["connections"]["hubspot"]["custom_fields"] = {"title": "jobtitle"}
    return HubConfig.model_validate(data)


def remote(hubspot: httpx.Client, contact_id: str) -> dict[str, Any]:
    r = hubspot.get(
        f"/crm/v3/objects/contacts/{contact_id}",
        params={"properties": "email,firstname,jobtitle"},
        headers=TOKEN,
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["properties"])


async def test_a_custom_field_propagates_and_clears(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    r = await client.patch(
        "/users/u1", json={"email": "ada@example.com", "fields": {"title": "Countess"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["fields"] == {"title": "Countess"}
    first = await synced(client, "u1")
    contact_id = first["sync"]["crmContactId"]
    assert remote(hubspot, contact_id)["jobtitle"] == "Countess"

    # Someone edits the property in HubSpot; a change of another field of the user keeps the
    # user's custom field but does not send it again (it did not change since last given).
    edited = hubspot.patch(
        f"/crm/v3/objects/contacts/{contact_id}",
        json={"properties": {"jobtitle": "Mathematician"}},
        headers=TOKEN,
    )
    assert edited.status_code == 200, edited.text
    await client.patch("/users/u1", json={"email": "ada@example.com", "firstName": "Ada"})
    second = await synced(client, "u1")
    assert second["fields"] == {"title": "Countess"}
    assert remote(hubspot, contact_id)["firstname"] == "Ada"
    assert remote(hubspot, contact_id)["jobtitle"] == "Mathematician"

    await client.patch("/users/u1", json={"email": "ada@example.com", "fields": {"title": None}})
    third = await synced(client, "u1")
    assert third["fields"] == {}
    assert remote(hubspot, contact_id)["jobtitle"] is None  # sent as cleared
    assert (await client.get("/users")).json()["items"][0]["fields"] == {}


async def test_a_custom_field_the_crm_connection_does_not_configure_is_422(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    r = await client.patch("/users/u1", json={"email": "a@example.com", "fields": {"plan": "x"}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "fields", "plan"]
    assert "'plan'" in r.json()["detail"][0]["msg"]
    assert (await client.get("/users/u1")).status_code == 404

    batch = await client.post(
        "/users/batch",
        json={
            "items": [
                {"id": "u2", "email": "b@example.com", "fields": {"title": "CTO"}},
                {"id": "u3", "email": "c@example.com", "fields": {"plan": "gold"}},
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    out = batch.json()
    assert [u["id"] for u in out["items"]] == ["u2"] and out["items"][0]["fields"] == {
        "title": "CTO"
    }
    assert [(e["index"], e["id"]) for e in out["errors"]] == [(1, "u3")]
    assert out["errors"][0]["detail"][0]["loc"] == ["fields", "plan"]
    done = await synced(client, "u2")
    assert remote(hubspot, done["sync"]["crmContactId"])["jobtitle"] == "CTO"
