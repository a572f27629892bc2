"""The declarative mapped CRM connector against the ACME simulator, over HTTP: configuration
only, the field map applied both ways, unknown fields refused before any request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from switchboard.config import Config, HubConfig
from switchboard.connectors.crm import (
    ContactNotFound,
    CrmContacts,
    DuplicateContact,
    MalformedResponse,
    UnknownField,
    crm_client,
)
from switchboard.connectors.mapped_crm import FieldMap, MappedCrmContacts
from switchboard.errors import TransientError
from switchboard.http import Outbound
from switchboard.http.testing import FakeClock
from switchboard.sandbox import AcmeSimulator, Sandbox, zero_config
from tests.support import Backend, make_settings


@pytest.fixture
def box() -> Iterator[Sandbox]:
    # One simulator per test: its rate-limit windows and records start empty.
    with Sandbox(only=["acme"]) as sandbox:
        yield sandbox


@pytest.fixture
def acme(box: Sandbox) -> AcmeSimulator:
    sim = box.acme
    assert sim is not None
    sim.rate_limit = 10_000  # the real 10/min would make these tests wait minutes
    return sim


@pytest.fixture
async def outbound(box: Sandbox, tmp_path: Any) -> AsyncIterator[Outbound]:
    data = zero_config(box.urls)
    data["connections"]["acme"].pop("rate_limit")
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    out = Outbound(Config(settings, HubConfig.model_validate(data), None), clock=FakeClock())
    yield out
    await out.aclose()


@pytest.fixture
def crm(outbound: Outbound) -> CrmContacts:
    return crm_client(outbound, outbound.config, "acme", mode="request")


async def test_create_and_update_arrive_under_the_crms_names(
    crm: CrmContacts, acme: AcmeSimulator
) -> None:
    contact = await crm.create(
        {"firstName": "Ada", "lastName": "Lovelace", "email": "Ada@Example.com"}
    )
    assert acme.contacts[contact.external_id] == {
        "acme_first_name": "Ada",
        "acme_last_name": "Lovelace",
        "acme_email": "ada@example.com",
        "id": contact.external_id,
    }
    assert contact.fields == {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.com",
    }

    updated = await crm.update(contact.external_id, {"firstName": "Augusta"})
    assert acme.contacts[contact.external_id]["acme_first_name"] == "Augusta"
    assert acme.contacts[contact.external_id]["acme_last_name"] == "Lovelace"  # merged
    assert updated.fields["firstName"] == "Augusta" and updated.fields["lastName"] == "Lovelace"
    put = [e for e in acme.log.entries() if e["method"] == "PUT"]
    assert len(put) == 1

    fetched = await crm.get(contact.external_id)
    assert fetched == updated


async def test_a_cleared_field_is_sent_as_null(crm: CrmContacts, acme: AcmeSimulator) -> None:
    contact = await crm.create({"email": "clear@example.com", "lastName": "Lovelace"})
    updated = await crm.update(contact.external_id, {"lastName": None})
    assert acme.contacts[contact.external_id]["acme_last_name"] is None
    assert updated.fields["lastName"] is None


async def test_a_second_create_of_an_email_is_a_duplicate(
    crm: CrmContacts, acme: AcmeSimulator
) -> None:
    existing = acme.create({"acme_email": "dup@example.com", "acme_first_name": "First"})
    with pytest.raises(DuplicateContact) as caught:
        await crm.create({"email": " DUP@example.com", "firstName": "Second"})
    assert caught.value.status_code == 409
    assert caught.value.existing_id == existing["id"]
    assert caught.value.existing is not None
    assert caught.value.existing.fields["firstName"] == "First"
    assert len(acme.contacts) == 1
    assert acme.log.count("POST", "/v1/acme/contacts") == 0


async def test_unknown_fields_are_refused_before_any_request(
    crm: CrmContacts, acme: AcmeSimulator
) -> None:
    with pytest.raises(UnknownField) as caught:
        await crm.create({"email": "a@b.io", "phone": "+1555"})
    assert caught.value.status_code == 422 and caught.value.field == "phone"
    with pytest.raises(UnknownField):
        await crm.update("x", {"nickname": "y"})
    assert acme.log.count() == 0
    assert acme.contacts == {}
    # Clearing a field the CRM does not have is nothing to send, not an error.
    created = await crm.create({"email": "c@d.io", "company": None})
    assert "company" not in created.fields


async def test_missing_records(crm: CrmContacts, acme: AcmeSimulator) -> None:
    assert await crm.get("no-such-id") is None
    with pytest.raises(ContactNotFound) as caught:
        await crm.update("no-such-id", {"firstName": "X"})
    assert caught.value.status_code == 404
    await crm.archive("no-such-id")  # idempotent
    created = await crm.create({"email": "del@example.com"})
    await crm.archive(created.external_id)
    assert created.external_id not in acme.contacts


async def test_find_by_email_scans_every_page(crm: CrmContacts, acme: AcmeSimulator) -> None:
    for i in range(230):
        acme.create({"acme_email": f"person{i}@example.com", "acme_first_name": f"P{i}"})
    found = await crm.find_by_email("PERSON229@example.com")
    assert found is not None and found.fields["firstName"] == "P229"
    assert acme.log.count("GET") == 3  # 100 per page
    assert await crm.find_by_email("nobody@example.com") is None


async def test_list_pages_in_our_names(crm: CrmContacts, acme: AcmeSimulator) -> None:
    assert isinstance(crm, MappedCrmContacts)
    for i in range(150):
        acme.create({"acme_email": f"l{i}@example.com"})
    records, next_page = await crm.client.list_page(page=1)
    assert len(records) == 100 and next_page == 2
    records, next_page = await crm.client.list_page(page=2)
    assert len(records) == 50 and next_page is None
    contact = crm.map.from_vendor(records[0])
    assert contact.fields["email"] == "l100@example.com"
    assert contact.raw == records[0]


async def test_rate_limited_and_down_are_transient(crm: CrmContacts, acme: AcmeSimulator) -> None:
    acme.rate_limit = 1
    await crm.get("a")
    with pytest.raises(TransientError) as caught:
        await crm.get("b")
    assert caught.value.status_code == 503 and caught.value.retry_after is not None
    acme.rate_limit = 10_000
    acme.faults.update(down="503")
    with pytest.raises(TransientError):
        await crm.create({"email": "x@y.io"})


def test_field_map_both_ways() -> None:
    fmap = FieldMap("crm", {"firstName": "fn", "email": "mail"}, id_field="key")
    assert fmap.to_vendor({"firstName": "A", "email": " A@B.IO"}) == {"fn": "A", "mail": "a@b.io"}
    contact = fmap.from_vendor({"key": 5, "fn": "", "mail": "a@b.io", "extra": 1})
    assert contact.external_id == "5" and contact.fields == {"firstName": None, "email": "a@b.io"}
    with pytest.raises(MalformedResponse):
        fmap.from_vendor({"fn": "no id"})
    with pytest.raises(ValueError, match="unknown hub fields"):
        FieldMap("crm", {"nickname": "nick"})
