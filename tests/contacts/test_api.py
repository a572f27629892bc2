"""``/contacts`` through HTTP: reads from the store, writes through to HubSpot and ACME."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.sandbox import AcmeSimulator
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
    assert (await client.delete(f"/contacts/{body['id']}")).status_code == 404
    assert (await client.get(f"/contacts/{body['id']}")).status_code == 404
    gone = await client.get(f"/contacts/{body['id']}", params={"include_deleted": "true"})
    assert gone.status_code == 200 and gone.json()["deletedAt"] is not None
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
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "phone"]
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


async def test_acme_duplicate_is_409_naming_the_existing_contact(
    acme: AcmeSimulator, client: httpx.AsyncClient
) -> None:
    existing = acme.create({"acme_email": "dup@example.com", "acme_first_name": "First"})
    response = await client.post(
        "/contacts", json={"email": "DUP@example.com", "firstName": "Second", "connection": "acme"}
    )
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["existingExternalId"] == existing["id"]
    assert len(acme.contacts) == 1  # no duplicate record in the CRM
    found = await client.get(f"/contacts/{body['existingId']}")
    assert found.status_code == 200 and found.json()["firstName"] == "First"
    # The hub's own creates too: the second one of an email is refused.
    first = await client.post("/contacts", json={"email": "new@example.com", "connection": "acme"})
    assert first.status_code == 201, first.text
    again = await client.post("/contacts", json={"email": "new@example.com", "connection": "acme"})
    assert again.status_code == 409 and again.json()["existingId"] == first.json()["id"]
    assert len(acme.contacts) == 2


async def test_acme_deleted_contact_is_404_and_listed_only_when_asked(
    acme: AcmeSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/contacts", json={"email": "gone@example.com", "connection": "acme"}
    )
    assert created.status_code == 201, created.text
    hub_id = created.json()["id"]
    assert (await client.delete(f"/contacts/{hub_id}")).status_code == 204
    assert (await client.get(f"/contacts/{hub_id}")).status_code == 404
    again = await client.delete(f"/contacts/{hub_id}")
    assert again.status_code == 404 and "deleted" in again.json()["detail"]
    assert [c["id"] for c in await all_contacts(client, connection="acme")] == []
    listed = await all_contacts(client, connection="acme", include_deleted="true")
    assert [c["id"] for c in listed] == [hub_id] and listed[0]["deletedAt"] is not None

    # Deleted in ACME itself: the sync tombstones it, and it is a 404 as well.
    other = acme.create({"acme_email": "other@example.com"})
    await sync_now("acme")
    other_id = (await all_contacts(client, connection="acme"))[0]["id"]
    acme.delete(other["id"])
    await sync_now("acme")
    assert (await client.get(f"/contacts/{other_id}")).status_code == 404
    assert (await client.delete(f"/contacts/{other_id}")).status_code == 404


async def test_acme_created_at_is_when_the_hub_first_saw_the_contact(
    acme: AcmeSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    before = datetime.now(UTC)
    created = await client.post(
        "/contacts", json={"email": "ada@example.com", "connection": "acme"}
    )
    assert created.status_code == 201, created.text
    created_at = created.json()["createdAt"]
    assert created_at is not None
    assert before <= datetime.fromisoformat(created_at) <= datetime.now(UTC)
    acme.create({"acme_email": "synced@example.com"})
    await sync_now("acme")
    by_email = {c["email"]: c for c in await all_contacts(client, connection="acme")}
    assert by_email["synced@example.com"]["createdAt"] is not None
    # A later change keeps the first sighting.
    patched = await client.patch(f"/contacts/{created.json()['id']}", json={"firstName": "Ada"})
    assert patched.status_code == 200 and patched.json()["createdAt"] == created_at
    await sync_now("acme")
    by_email = {c["email"]: c for c in await all_contacts(client, connection="acme")}
    assert by_email["ada@example.com"]["createdAt"] == created_at
    again = await client.get(f"/contacts/{created.json()['id']}")
    assert again.json()["createdAt"] == created_at


async def test_an_unknown_connection_is_404_naming_it(
    hubspot: HubSpotSimulator, client: httpx.AsyncClient
) -> None:
    for method, path, kwargs in (
        ("GET", "/contacts", {"params": {"connection": "nope"}}),
        ("POST", "/contacts", {"json": {"email": "a@b.io", "connection": "nope"}}),
        ("GET", "/tasks", {"params": {"connection": "nope"}}),
        ("GET", "/tasks/t1", {"params": {"connection": "nope"}}),
        ("GET", "/connections/nope", {}),
        ("POST", "/connections/nope/sync", {}),
        ("GET", "/connections/nope/runs", {}),
    ):
        response = await client.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert "'nope'" in response.json()["detail"], (method, path)
    assert hubspot.log.count() == 0
