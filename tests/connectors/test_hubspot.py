"""The HubSpot contacts client and its ``CrmContacts`` adapter against the simulator, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from switchboard.config import Config, HubConfig
from switchboard.connectors.crm import (
    ContactNotFound,
    CrmContacts,
    DuplicateContact,
    InvalidContact,
    MalformedResponse,
    NotACrm,
    UnknownField,
    crm_client,
)
from switchboard.connectors.hubspot import HubSpotClient, HubSpotContacts, from_record
from switchboard.connectors.hubspot.mapping import existing_id, to_properties
from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.errors import TransientError
from switchboard.http import Outbound
from switchboard.http.testing import FakeClock
from switchboard.sandbox import Sandbox, zero_config
from tests.support import Backend, make_settings

SEEDED = 250
PROPS = ["email", "firstname", "lastname", "phone", "company"]


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(only=["hubspot"], contacts=SEEDED) as sandbox:
        yield sandbox


@pytest.fixture
def hubspot(box: Sandbox) -> Iterator[HubSpotSimulator]:
    sim = box.hubspot
    assert sim is not None
    sim.faults.clear()
    sim.log.clear()
    yield sim
    sim.faults.clear()


def _config(tmp_path: Any, urls: dict[str, str]) -> Config:
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    return Config(settings, HubConfig.model_validate(zero_config(urls)), None)


@pytest.fixture
async def outbound(box: Sandbox, tmp_path: Any) -> AsyncIterator[Outbound]:
    # No database: these calls need none (budgets per process). The fake clock makes every
    # retry wait (Retry-After, backoff) return at once while keeping the decisions.
    out = Outbound(_config(tmp_path, box.urls), clock=FakeClock())
    yield out
    await out.aclose()


@pytest.fixture
def crm(outbound: Outbound) -> CrmContacts:
    return crm_client(outbound, outbound.config, "hubspot", mode="request")


@pytest.fixture
def client(outbound: Outbound) -> HubSpotClient:
    return HubSpotClient(outbound.client("hubspot"), mode="job")


async def test_list_follows_paging_to_the_end(
    client: HubSpotClient, hubspot: HubSpotSimulator
) -> None:
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = await client.list_page(properties=PROPS, after=after)
        pages += 1
        seen += [r["id"] for r in page["results"]]
        assert set(page["results"][0]["properties"]) >= set(PROPS)
        after = (page.get("paging") or {}).get("next", {}).get("after")
        if after is None:
            break
    live = sorted(c.id for c in hubspot.store.active())
    assert [int(i) for i in seen] == live
    assert pages == -(-len(live) // 100)
    requests = [e for e in hubspot.log.entries() if e["method"] == "GET"]
    assert all("limit=100" in e["query"] for e in requests)


async def test_get_by_id_and_by_email(crm: CrmContacts, hubspot: HubSpotSimulator) -> None:
    created = hubspot.ui_create({"email": "o'neil+tag@example.com", "firstname": "Shaq"})
    by_id = await crm.get(created["id"])
    assert by_id is not None and by_id.fields["email"] == "o'neil+tag@example.com"
    assert by_id.fields["firstName"] == "Shaq" and by_id.fields["lastName"] is None
    assert by_id.created_at is not None and by_id.updated_at is not None
    # The email goes percent-encoded in the path: "+" and "'" must survive.
    by_email = await crm.find_by_email("O'Neil+Tag@Example.com")
    assert by_email is not None and by_email.external_id == created["id"]
    assert await crm.get("999999999") is None
    assert await crm.find_by_email("nobody@example.com") is None


async def test_create_maps_fields_and_duplicate_carries_the_existing_id(
    crm: CrmContacts, hubspot: HubSpotSimulator
) -> None:
    contact = await crm.create(
        {"email": "New.Person@Example.com", "firstName": "New", "lastName": "Person"}
    )
    stored = hubspot.store.get(int(contact.external_id))
    assert stored is not None
    assert stored.properties == {
        "email": "new.person@example.com",
        "firstname": "New",
        "lastname": "Person",
    }
    assert contact.fields == {
        "email": "new.person@example.com",
        "firstName": "New",
        "lastName": "Person",
    }
    with pytest.raises(DuplicateContact) as caught:
        await crm.create({"email": "new.person@example.com"})
    assert caught.value.existing_id == contact.external_id
    assert caught.value.status_code == 409 and caught.value.provider_status == 409


async def test_update_archive_and_their_failures(
    crm: CrmContacts, hubspot: HubSpotSimulator
) -> None:
    created = hubspot.ui_create({"email": "upd@example.com", "firstname": "Old"})
    updated = await crm.update(created["id"], {"firstName": "New", "phone": None})
    assert updated.fields["firstName"] == "New"
    stored = hubspot.store.get(int(created["id"]))
    assert stored is not None and stored.properties["firstname"] == "New"
    with pytest.raises(ContactNotFound):
        await crm.update("999999999", {"firstName": "X"})
    with pytest.raises(InvalidContact) as invalid:
        await crm.update(created["id"], {"email": "not-an-email"})
    assert invalid.value.status_code == 422 and invalid.value.provider_status == 400

    before = hubspot.log.count()
    with pytest.raises(UnknownField) as unknown:
        await crm.update(created["id"], {"nickname": "x"})
    assert unknown.value.status_code == 422
    assert hubspot.log.count() == before  # refused before any request

    await crm.archive(created["id"])
    await crm.archive(created["id"])  # idempotent
    assert await crm.get(created["id"]) is None
    assert isinstance(crm, HubSpotContacts)
    archived = await crm.get_archived(created["id"])
    assert archived is not None and archived.archived and archived.updated_at is not None


async def test_archived_listing_batch_read_and_search(
    client: HubSpotClient, hubspot: HubSpotSimulator
) -> None:
    gone = hubspot.ui_create({"email": "gone@example.com"})
    hubspot.ui_delete(gone["id"])
    ids: list[str] = []
    after = None
    while True:
        page = await client.list_page(properties=PROPS, after=after, archived=True)
        ids += [r["id"] for r in page["results"] if r["archived"]]
        after = (page.get("paging") or {}).get("next", {}).get("after")
        if after is None:
            break
    assert gone["id"] in ids

    read = await client.batch_read(ids=["1", "2", "999999"], properties=PROPS)
    assert sorted(r["id"] for r in read) == ["1", "2"]

    found = await client.search_page(
        filters=[{"propertyName": "hs_object_id", "operator": "LTE", "value": "10"}],
        properties=PROPS,
        limit=5,
    )
    assert [r["id"] for r in found["results"]] == ["1", "2", "3", "4", "5"]
    assert found["total"] == 10 and found["paging"]["next"]["after"] == "5"
    searches = [e for e in hubspot.log.entries() if e["path"].endswith("/search")]
    assert searches and all(e["method"] == "POST" and e["status"] == 200 for e in searches)


async def test_rate_limit_storm_and_outage_are_transient(
    crm: CrmContacts, hubspot: HubSpotSimulator, outbound: Outbound
) -> None:
    hubspot.faults.update(storm=True, storm_retry_after=30)
    with pytest.raises(TransientError) as storm:
        await crm.get("1")
    assert storm.value.status_code == 503
    assert storm.value.headers is not None and "Retry-After" in storm.value.headers
    hubspot.faults.clear()
    hubspot.faults.update(down="503")
    with pytest.raises(TransientError):
        await crm.find_by_email("ada@example.com")


async def test_garbage_answers_are_a_bad_gateway(
    asgi_server: Callable[[Any], str], tmp_path: Any
) -> None:
    async def html(_: Any) -> Response:
        return Response("<html>maintenance</html>", media_type="text/html")

    url = asgi_server(
        Starlette(routes=[Route("/crm/v3/objects/contacts/{rest:path}", html, methods=["GET"])])
    )
    out = Outbound(_config(tmp_path, {"hubspot": url}), clock=FakeClock())
    try:
        crm = crm_client(out, out.config, "hubspot", mode="request")
        with pytest.raises(MalformedResponse) as caught:
            await crm.get("1")
        assert caught.value.status_code == 502
    finally:
        await out.aclose()


def test_pure_mappings() -> None:
    assert to_properties({"firstName": "A", "email": " X@Y.io ", "phone": None}, "h") == {
        "firstname": "A",
        "email": "x@y.io",
        "phone": "",
    }
    with pytest.raises(UnknownField):
        to_properties({"first_name": "A"}, "h")
    contact = from_record(
        {
            "id": "7",
            "properties": {"email": "a@b.io", "firstname": "", "lastmodifieddate": "x"},
            "createdAt": "2024-01-01T00:00:00.000Z",
            "updatedAt": "2024-01-02T00:00:00.000Z",
            "archived": False,
        },
        "h",
    )
    assert contact.fields == {"email": "a@b.io", "firstName": None}
    assert contact.updated_at is not None and contact.updated_at.isoformat().startswith(
        "2024-01-02T00:00:00"
    )
    assert existing_id("Contact already exists. Existing ID: 37765128953") == "37765128953"
    assert existing_id("something else") is None
    with pytest.raises(MalformedResponse):
        from_record({"properties": {}}, "h")


async def test_a_non_crm_connection_is_refused(outbound: Outbound) -> None:
    with pytest.raises(NotACrm):
        crm_client(outbound, outbound.config, "nope", mode="request")
