"""``/contacts`` through HTTP: reads from the store, writes through to HubSpot and ACME."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from switchboard.sandbox import AcmeSimulator, HubSpotSimulator
from tests.contacts.conftest import SyncNow, all_contacts


async def test_list_filters_and_pages_in_a_stable_order(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(120)
    hubspot.ui_update(5, {"firstname": "Zebedee", "lastname": "Quux"})
    hubspot.ui_delete(6)
    await sync_now()
    first = (await client.get("/contacts", params={"limit": 50})).json()
    assert len(first["items"]) == 50 and first["next_cursor"]
    ids = [i["id"] for i in first["items"]]
    assert ids == sorted(ids)
    rest = await all_contacts(client)
    assert len(rest) == 119 and len({i["id"] for i in rest}) == 119
    assert len(await all_contacts(client, include_deleted="true")) == 120

    q = (await client.get("/contacts", params={"q": "zebEDEE"})).json()["items"]
    assert [i["externalId"] for i in q] == ["5"] and q[0]["name"] == "Zebedee Quux"
    email = hubspot.store.get(10).properties["email"]  # type: ignore[union-attr]
    by_email = (await client.get("/contacts", params={"email": email.upper()})).json()["items"]
    assert [i["externalId"] for i in by_email] == ["10"]
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    recent = (await client.get("/contacts", params={"updated_since": since})).json()["items"]
    assert [i["externalId"] for i in recent] == ["5"]
    assert (await client.get("/contacts", params={"connection": "acme"})).json()["items"] == []

    assert (await client.get("/contacts", params={"limit": 501})).status_code == 422
    bad = await client.get("/contacts", params={"cursor": "nonsense!"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/json"

    one = await client.get(f"/contacts/{ids[0]}", params={"raw": "true"})
    assert one.status_code == 200 and one.json()["raw"]["properties"]["hs_object_id"]
    assert (await client.get(f"/contacts/{ids[0]}")).json()["raw"] is None
    assert (await client.get("/contacts/no-such-id")).status_code == 404


async def test_hubspot_crud_goes_through_to_the_crm(
    hubspot: HubSpotSimulator, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/contacts",
        json={
            "email": "Grace@Example.com",
            "firstName": "Grace",
            "lastName": "Hopper",
            "phone": "1",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["connection"] == "hubspot" and body["email"] == "grace@example.com"
    assert body["name"] == "Grace Hopper"
    remote = hubspot.store.get(int(body["externalId"]))
    assert remote is not None and remote.properties["firstname"] == "Grace"

    patched = await client.patch(f"/contacts/{body['id']}", json={"company": "Navy"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["company"] == "Navy" and patched.json()["firstName"] == "Grace"
    assert remote.properties["company"] == "Navy"

    put = await client.put(
        f"/contacts/{body['id']}", json={"email": "grace@example.com", "firstName": "G"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["lastName"] is None and put.json()["phone"] is None
    assert "lastname" not in remote.properties and remote.properties["firstname"] == "G"
    stored = (await client.get(f"/contacts/{body['id']}")).json()
    assert stored["firstName"] == "G" and stored["company"] is None

    deleted = await client.delete(f"/contacts/{body['id']}")
    assert deleted.status_code == 204 and remote.archived
    assert (await client.delete(f"/contacts/{body['id']}")).status_code == 204
    gone = (await client.get(f"/contacts/{body['id']}")).json()
    assert gone["deletedAt"] is not None
    assert (
        await client.patch(f"/contacts/{body['id']}", json={"firstName": "X"})
    ).status_code == 404


async def test_acme_crud_arrives_under_acme_names(
    acme: AcmeSimulator, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/contacts",
        json={
            "email": "ada@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "connection": "acme",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert acme.contacts[body["externalId"]]["acme_first_name"] == "Ada"
    patched = await client.patch(f"/contacts/{body['id']}", json={"firstName": "Augusta"})
    assert patched.status_code == 200, patched.text
    assert acme.contacts[body["externalId"]]["acme_first_name"] == "Augusta"
    assert patched.json()["name"] == "Augusta Lovelace"
    unknown = await client.patch(f"/contacts/{body['id']}", json={"phone": "+1555"})
    assert unknown.status_code == 422 and "phone" in unknown.json()["detail"]
    assert "phone" not in str(acme.contacts[body["externalId"]])
    assert (await client.delete(f"/contacts/{body['id']}")).status_code == 204
    assert body["externalId"] not in acme.contacts


async def test_bad_input_is_422_and_unknown_ids_404(
    hubspot: HubSpotSimulator, client: httpx.AsyncClient
) -> None:
    for payload in (
        {"email": "not-an-email"},
        {"firstName": "no email"},
        {"email": "a@b.io", "nickname": "x"},
        {"email": "a@b.io", "connection": "todo-nope"},
    ):
        response = await client.post("/contacts", json=payload)
        assert response.status_code == 422, (payload, response.text)
    assert (await client.patch("/contacts/unknown", json={"firstName": "x"})).status_code == 404
    assert (await client.put("/contacts/unknown", json={"email": "a@b.io"})).status_code == 404
    assert (await client.delete("/contacts/unknown")).status_code == 404
    assert hubspot.log.count() == 0  # none of that reached the CRM


async def test_duplicate_is_409_naming_the_existing_contact(
    hubspot: HubSpotSimulator, client: httpx.AsyncClient
) -> None:
    existing = hubspot.ui_create({"email": "dup@example.com", "firstname": "First"})
    response = await client.post("/contacts", json={"email": "dup@example.com"})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["existingExternalId"] == existing["id"]
    found = await client.get(f"/contacts/{body['existingId']}")
    assert found.status_code == 200 and found.json()["firstName"] == "First"


async def test_crm_failures_are_502_and_503_never_500(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(1)
    await sync_now()
    hub_id = (await client.get("/contacts")).json()["items"][0]["id"]

    hubspot.faults.update(storm=True, storm_retry_after=30)
    limited = await client.patch(f"/contacts/{hub_id}", json={"firstName": "X"})
    assert limited.status_code == 503 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"] == "application/json"
    hubspot.faults.clear()

    hubspot.faults.update(down="503")
    down = await client.post("/contacts", json={"email": "x@example.com"})
    assert down.status_code == 503 and down.headers["content-type"] == "application/json"
    hubspot.faults.clear()

    hubspot.tokens.revoke("pat-sandbox")  # HubSpot answers 401: nothing a retry can fix
    refused = await client.delete(f"/contacts/{hub_id}")
    assert refused.status_code == 502 and refused.headers["content-type"] == "application/json"
    # No half-applied write: the store still has the contact as it was.
    still = (await client.get(f"/contacts/{hub_id}")).json()
    assert still["deletedAt"] is None and still["firstName"] != "X"
