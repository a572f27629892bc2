"""The official ``hubspot-api-client`` SDK works unchanged against the HubSpot simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import hubspot
import pytest
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.oauth import ApiException as OAuthApiException

from switchboard.connectors.hubspot.simulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    HubSpotSimulator,
)


@pytest.fixture
def sim() -> HubSpotSimulator:
    return HubSpotSimulator(contacts=250, seed=7)


@pytest.fixture
def base_url(sim: HubSpotSimulator, asgi_server: Callable[[Any], str]) -> str:
    return asgi_server(sim.app)


@pytest.fixture
def client(base_url: str) -> hubspot.Client:
    return hubspot.Client.create(access_token="pat-sandbox", host=base_url)


def test_get_all_reads_every_page(client: hubspot.Client, sim: HubSpotSimulator) -> None:
    contacts = client.crm.contacts.get_all()

    assert len(contacts) == 250
    assert [c.id for c in contacts] == [str(i) for i in range(1, 251)]
    assert contacts[0].properties["hs_object_id"] == "1"
    assert {"email", "firstname", "lastname", "createdate", "lastmodifieddate"} <= set(
        contacts[0].properties
    )
    # 100 + 100 + 50: the SDK followed the opaque `after` twice.
    assert sim.log.count("GET", "/crm/v3/objects/contacts") == 3


def test_update_by_email_bumps_last_modified(client: hubspot.Client) -> None:
    first = client.crm.contacts.basic_api.get_page(limit=1).results[0]
    email = first.properties["email"]

    updated = client.crm.contacts.basic_api.update(
        email, SimplePublicObjectInput(properties={"firstname": "Zed"}), id_property="email"
    )

    assert updated.id == first.id
    assert updated.properties["firstname"] == "Zed"
    assert updated.updated_at > first.updated_at
    assert updated.properties["lastmodifieddate"] > first.properties["lastmodifieddate"]
    again = client.crm.contacts.basic_api.get_by_id(email, id_property="email")
    assert again.properties["firstname"] == "Zed"


def test_search_filters_sorts_and_pages(client: hubspot.Client) -> None:
    request = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "hs_object_id", "operator": "GTE", "value": "200"}]}
        ],
        sorts=[{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
        properties=["email"],
        limit=20,
    )
    first = client.crm.contacts.search_api.do_search(request)

    assert first.total == 51
    assert [r.id for r in first.results] == [str(i) for i in range(250, 230, -1)]
    assert first.paging.next.after == "20"
    request.after = first.paging.next.after
    second = client.crm.contacts.search_api.do_search(request)
    assert second.results[0].id == "230"


def test_duplicate_create_raises_409_with_hubspots_body(client: hubspot.Client) -> None:
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "Dup@Example.com"})
    )
    assert created.properties["email"] == "dup@example.com"

    with pytest.raises(ApiException) as info:
        client.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "dup@example.com"})
        )

    assert info.value.status == 409
    body = json.loads(info.value.body)
    assert body["status"] == "error"
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {created.id}"
    assert body["correlationId"]


def test_oauth_refresh_rotates_and_the_access_token_works(base_url: str) -> None:
    anonymous = hubspot.Client.create(host=base_url)

    tokens = anonymous.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
    )

    assert tokens.token_type == "bearer"
    assert tokens.expires_in == 1800
    assert tokens.refresh_token != REFRESH_TOKEN
    oauth_client = hubspot.Client.create(access_token=tokens.access_token, host=base_url)
    assert len(oauth_client.crm.contacts.basic_api.get_page(limit=5).results) == 5

    with pytest.raises(OAuthApiException) as info:
        anonymous.oauth.tokens_api.create(
            grant_type="refresh_token",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=REFRESH_TOKEN,  # spent by the rotation above
        )
    assert info.value.status == 400
    body = json.loads(info.value.body)
    assert body["status"] == "BAD_REFRESH_TOKEN"
    assert body["error"] == "invalid_grant"

    rotated = anonymous.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=tokens.refresh_token,
    )
    assert rotated.access_token != tokens.access_token


def test_unknown_token_is_invalid_authentication(base_url: str) -> None:
    bad = hubspot.Client.create(access_token="pat-wrong", host=base_url)

    with pytest.raises(ApiException) as info:
        bad.crm.contacts.basic_api.get_page()

    assert info.value.status == 401
    assert json.loads(info.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_batch_upsert_read_and_update_with_partial_errors(
    client: hubspot.Client, sim: HubSpotSimulator
) -> None:
    batch = client.crm.contacts.batch_api
    existing = client.crm.contacts.basic_api.get_page(limit=1).results[0]
    known = existing.properties["email"]
    before = sim.log.count()
    upserted = batch.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id=email, id_property="email", properties={"firstname": "Up"}
                )
                for email in (known, "fresh@example.com", "bad@example.c0m")
            ]
        )
    )
    assert sim.log.count() == before + 1  # one request against the rate limit
    by_email = {r.properties["email"]: r for r in upserted.results}
    assert by_email[known].id == existing.id and by_email[known].new is False
    assert by_email["fresh@example.com"].new is True
    [error] = upserted.errors
    assert error.status == "error" and error.category == "VALIDATION_ERROR"
    assert "bad@example.c0m" in error.message and error.context == {"ids": ["bad@example.c0m"]}

    read = batch.read(
        BatchReadInputSimplePublicObjectId(
            id_property="email",
            properties=["firstname"],
            inputs=[SimplePublicObjectId(id=known), SimplePublicObjectId(id="nobody@example.com")],
        )
    )
    assert [r.properties["firstname"] for r in read.results] == ["Up"]
    assert read.errors[0].category == "OBJECT_NOT_FOUND"

    updated = batch.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=existing.id, properties={"lastname": "Batch"}),
                SimplePublicObjectBatchInput(id="99999999", properties={"lastname": "Nobody"}),
            ]
        )
    )
    assert [r.properties["lastname"] for r in updated.results] == ["Batch"]
    assert updated.errors[0].context == {"ids": ["99999999"]}


def test_more_than_100_batch_inputs_is_hubspots_400(client: hubspot.Client) -> None:
    inputs = [
        SimplePublicObjectBatchInput(id=str(i), properties={"firstname": "X"})
        for i in range(1, 102)
    ]
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=inputs))
    assert raised.value.status == 400
    body = json.loads(raised.value.body)
    assert body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
    assert "maximum number of inputs supported in a batch request is 100" in body["message"]
    assert "correlationId" in body
