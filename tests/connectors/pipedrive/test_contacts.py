"""``PipedriveContacts`` (the hub's CRM interface) against the simulator over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.connectors.crm import (
    ContactNotFound,
    ContactWrite,
    DuplicateContact,
    UnknownField,
)
from switchboard.connectors.pipedrive.contacts import PipedriveContacts
from switchboard.connectors.pipedrive.simulator import API_TOKEN, PipedriveSimulator
from switchboard.errors import TerminalError
from switchboard.http import Outbound
from switchboard.http.testing import FakeClock
from tests.connectors.pipedrive.conftest import NAME, connection, hub_config
from tests.support import Backend, make_settings


def requests(sim: PipedriveSimulator, method: str | None = None) -> list[dict[str, Any]]:
    return [e for e in sim.log.entries() if method is None or e["method"] == method]


async def test_create_get_update_delete(crm: PipedriveContacts, sim: PipedriveSimulator) -> None:
    created = await crm.create(
        {"email": "Ada@Example.com", "firstName": "Ada", "lastName": "Lovelace", "phone": "+1"}
    )
    stored = sim.store.get(int(created.external_id))
    assert stored["name"] == "Ada Lovelace"
    assert stored["email"] == [{"value": "ada@example.com", "primary": True, "label": "work"}]
    assert created.fields == {
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": "+1",
        "company": None,
    }
    assert created.updated_at is not None

    sim.log.clear()
    updated = await crm.update(created.external_id, {"lastName": "King"})
    # One name part: the person is read, then the whole name written.
    assert [(e["method"], e["status"]) for e in requests(sim)] == [("GET", 200), ("PUT", 200)]
    assert updated.fields["firstName"] == "Ada" and updated.fields["lastName"] == "King"
    assert await crm.get(created.external_id) == updated

    sim.log.clear()
    both = await crm.update(created.external_id, {"firstName": "Augusta", "lastName": "Byron"})
    assert [e["method"] for e in requests(sim)] == ["PUT"]  # nothing to read first
    assert both.fields["firstName"] == "Augusta"

    await crm.archive(created.external_id)
    assert await crm.get(created.external_id) is None
    deleted = await crm.get_archived(created.external_id)
    assert deleted is not None and deleted.archived and deleted.fields["lastName"] == "Byron"
    await crm.archive(created.external_id)  # idempotent
    await crm.archive("999999")
    await crm.archive("not-a-number")


async def test_a_second_create_of_an_email_is_a_duplicate(
    crm: PipedriveContacts, sim: PipedriveSimulator
) -> None:
    existing = sim.store.create({"name": "First One", "email": "dup@example.com"})
    sim.log.clear()
    with pytest.raises(DuplicateContact) as caught:
        await crm.create({"email": " DUP@example.com", "firstName": "Second"})
    assert caught.value.status_code == 409
    assert caught.value.existing_id == str(existing["id"])
    assert caught.value.existing is not None
    assert caught.value.existing.fields["firstName"] == "First"
    assert not requests(sim, "POST")  # Pipedrive itself would have accepted a second one
    assert len(sim.store.active()) == 1


async def test_find_by_email(crm: PipedriveContacts, sim: PipedriveSimulator) -> None:
    sim.store.create({"name": "Other", "email": "ada@example.com.evil"})
    wanted = sim.store.create(
        {"name": "Ada Lovelace", "email": [{"value": "work@x.io"}, {"value": "Ada@Example.com"}]}
    )
    found = await crm.find_by_email("ADA@example.com")
    assert found is not None and found.external_id == str(wanted["id"])
    search = [e for e in requests(sim) if e["path"] == "/v1/persons/search"]
    assert "exact_match=true" in search[0]["query"] and "fields=email" in search[0]["query"]
    assert await crm.find_by_email("nobody@example.com") is None
    sim.store.delete(wanted["id"])
    assert await crm.find_by_email("ada@example.com") is None


async def test_missing_persons(crm: PipedriveContacts, sim: PipedriveSimulator) -> None:
    assert await crm.get("123456") is None
    with pytest.raises(ContactNotFound):
        await crm.update("123456", {"firstName": "X", "lastName": "Y"})  # the PUT's 404
    with pytest.raises(ContactNotFound):
        await crm.update("123456", {"lastName": "Y"})  # the GET before it
    gone = sim.store.create({"name": "Gone Person"})
    sim.store.delete(gone["id"])
    with pytest.raises(ContactNotFound):
        await crm.update(str(gone["id"]), {"firstName": "X", "lastName": "Y"})


async def test_refusals_come_before_any_request(
    crm: PipedriveContacts, sim: PipedriveSimulator
) -> None:
    with pytest.raises(UnknownField):
        await crm.create({"email": "a@b.io", "company": "ACME"})
    with pytest.raises(UnknownField):
        await crm.update("1", {"nickname": "x"})
    assert sim.log.count() == 0


async def test_write_many_finds_creates_and_updates(
    crm: PipedriveContacts, sim: PipedriveSimulator
) -> None:
    known = sim.store.create({"name": "Known Person", "email": "known@example.com"})
    writes = [
        ContactWrite("known@example.com", {"email": "known@example.com", "firstName": "Kay"}),
        ContactWrite("new@example.com", {"email": "new@example.com", "firstName": "New"}),
        ContactWrite(
            "byid@example.com",
            {"email": "byid@example.com", "firstName": "Known", "lastName": "Again"},
            contact_id=str(known["id"]),
            known={"email": "known@example.com", "firstName": "Known", "lastName": "Person"},
        ),
    ]
    results = await crm.write_many(writes, create_missing=True)
    assert all(not isinstance(r, Exception) for r in results), results
    assert len(sim.store.active()) == 2
    assert sim.store.get(known["id"])["email"][0]["value"] == "byid@example.com"
    missing = await crm.write_many(
        [ContactWrite("ghost@example.com", {"email": "ghost@example.com"})], create_missing=False
    )
    assert isinstance(missing[0], ContactNotFound)
    read = await crm.read_many([str(known["id"]), "999", str(known["id"])])
    assert list(read) == [str(known["id"])]


async def test_the_api_token_travels_in_a_header_never_the_url(
    crm: PipedriveContacts, sim: PipedriveSimulator
) -> None:
    await crm.get("1")
    assert requests(sim) and all("api_token" not in e["query"] for e in requests(sim))


async def test_a_wrong_token_is_refused(
    sim: PipedriveSimulator, sim_url: str, tmp_path: Any
) -> None:
    conn = connection(sim_url, api_token="wrong")
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    out = Outbound(hub_config(settings, conn), clock=FakeClock())
    try:
        crm = PipedriveContacts(out.client(NAME), conn, mode="request")
        with pytest.raises(TerminalError) as caught:
            await crm.get("1")
        assert caught.value.provider_status == 401
        assert caught.value.provider_message == "unauthorized access"
    finally:
        await out.aclose()


async def test_a_bearer_token_works_instead(
    sim: PipedriveSimulator, sim_url: str, tmp_path: Any
) -> None:
    sim.access_tokens.add("oauth-access")
    conn = connection(sim_url, api_token=None, auth={"type": "token", "token": "oauth-access"})
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    out = Outbound(hub_config(settings, conn), clock=FakeClock())
    try:
        crm = PipedriveContacts(out.client(NAME), conn, mode="request")
        created = await crm.create({"email": "bearer@example.com", "firstName": "Bea"})
        assert sim.store.get(int(created.external_id))["name"] == "Bea"
    finally:
        await out.aclose()
    assert API_TOKEN not in str(sim.log.entries())


PLAN = "5ba4c3e2f1d0a9b8c7d6e5f4a3b2c1d0e9f8a7b6"


async def test_custom_fields_are_written_to_and_read_from_the_person(
    sim: PipedriveSimulator, outbound: Outbound, sim_url: str
) -> None:
    conn = connection(sim_url, custom_fields={"plan": PLAN})
    custom = PipedriveContacts(outbound.client(NAME), conn, mode="request")
    created = await custom.create({"email": "ada@example.com", "firstName": "Ada", "plan": "gold"})
    person_id = int(created.external_id)
    assert sim.store.get(person_id)[PLAN] == "gold"
    assert created.fields["plan"] == "gold"
    updated = await custom.update(created.external_id, {"plan": "silver"})
    assert updated.fields["plan"] == "silver" and sim.store.get(person_id)[PLAN] == "silver"
    cleared = await custom.update(created.external_id, {"plan": None})
    assert cleared.fields["plan"] is None and sim.store.get(person_id)[PLAN] is None
    got = await custom.get(created.external_id)
    assert got is not None and got.fields["plan"] is None
    calls = custom.calls
    with pytest.raises(UnknownField) as caught:
        await custom.update(created.external_id, {"tier": "x"})
    assert caught.value.loc == ("body", "fields", "tier") and custom.calls == calls
