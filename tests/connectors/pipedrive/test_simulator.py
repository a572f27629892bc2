"""The simulator's fidelity points, over raw HTTP (what the connector relies on, and what it
must survive)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from switchboard.connectors.pipedrive.simulator import (
    API_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    PipedriveSimulator,
)

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


@pytest.fixture
async def http(sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim_url, headers={"x-api-token": API_TOKEN}) as c:
        yield c


async def test_the_token_may_ride_in_the_query_too(sim_url: str) -> None:
    async with httpx.AsyncClient(base_url=sim_url) as anonymous:
        assert (
            await anonymous.get("/v1/persons", params={"api_token": API_TOKEN})
        ).status_code == 200
        refused = await anonymous.get("/v1/persons")
        assert refused.status_code == 401
        assert refused.json() == {
            "success": False,
            "error": "unauthorized access",
            "error_info": ERROR_INFO,
            "data": None,
            "additional_data": None,
        }
        bearer = await anonymous.get("/v1/persons", headers={"Authorization": "Bearer nope"})
        assert bearer.status_code == 401


async def test_a_person_in_pipedrives_shape(http: httpx.AsyncClient) -> None:
    org = (await http.post("/_sandbox/pipedrive/persons", json={"count": 1})).json()[0]
    created = await http.post(
        "/v1/persons", json={"name": "  Ada  King Lovelace ", "org_id": org["org_id"]["value"]}
    )
    assert created.status_code == 201
    person = created.json()["data"]
    assert (person["name"], person["first_name"], person["last_name"]) == (
        "Ada  King Lovelace",
        "Ada",
        "King Lovelace",
    )
    assert person["email"] == [{"value": "", "primary": True}]  # no email, as Pipedrive shows it
    assert person["org_id"] == {"name": person["org_name"], "value": org["org_id"]["value"]}
    assert person["active_flag"] is True and len(person["update_time"]) == 19

    deleted = await http.delete(f"/v1/persons/{person['id']}")
    assert deleted.json() == {"success": True, "data": {"id": person["id"]}}
    after = (await http.get(f"/v1/persons/{person['id']}")).json()["data"]
    assert after["active_flag"] is False  # still readable by id
    listed = (await http.get("/v1/persons")).json()["data"]
    assert [p["id"] for p in listed] == [org["id"]]
    assert (await http.delete(f"/v1/persons/{person['id']}")).status_code == 404
    assert (await http.put(f"/v1/persons/{person['id']}", json={"name": "X"})).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "kw", "status", "message"),
    [
        ("POST", "/v1/persons", {"json": {"email": "a@b.io"}}, 400, "Name must be given."),
        (
            "POST",
            "/v1/persons",
            {"json": {"name": "A", "org_id": 999}},
            400,
            "Organization not found.",
        ),
        ("POST", "/v1/persons", {"json": {"name": "A", "email": [{"x": 1}]}}, 400, None),
        ("GET", "/v1/persons", {"params": {"limit": 501}}, 400, None),
        ("GET", "/v1/persons/search", {"params": {"term": "a"}}, 400, None),
        ("GET", "/v1/persons/search", {"params": {"term": "ab", "fields": "title"}}, 400, None),
        ("GET", "/v1/persons/abc", {}, 404, "Person not found"),
    ],
)
async def test_refusals_in_pipedrives_envelope(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    kw: dict[str, Any],
    status: int,
    message: str | None,
) -> None:
    response = await http.request(method, path, **kw)
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["data"] is None and body["error_info"] == ERROR_INFO
    if message is not None:
        assert body["error"] == message


async def test_search_with_one_character_needs_an_exact_match(http: httpx.AsyncClient) -> None:
    await http.post("/v1/persons", json={"name": "X", "phone": "7"})
    found = await http.get(
        "/v1/persons/search", params={"term": "7", "fields": "phone", "exact_match": "true"}
    )
    assert [i["item"]["phones"] for i in found.json()["data"]["items"]] == [["7"]]


async def test_faults_answer_in_pipedrives_words(
    http: httpx.AsyncClient, sim: PipedriveSimulator
) -> None:
    sim.faults.update(down="503")
    down = await http.get("/v1/persons")
    assert down.status_code == 503 and down.json()["success"] is False
    sim.faults.clear()
    assert (await http.get("/v1/persons")).status_code == 200


async def test_the_token_endpoint_wants_the_app_in_basic_auth(
    sim_url: str, sim: PipedriveSimulator
) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    async with httpx.AsyncClient(base_url=sim_url) as anonymous:
        in_body = await anonymous.post(
            "/oauth/token", data={**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        )
        assert in_body.status_code == 401  # Pipedrive takes the app's credentials as Basic only
        answer = await anonymous.post(
            "/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}
        )
        assert answer.status_code == 200
        tokens = answer.json()
        assert tokens["token_type"] == "Bearer" and tokens["api_domain"] == sim_url
        listed = await anonymous.get(
            "/v1/persons", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert listed.status_code == 200
        bad_grant = await anonymous.post(
            "/oauth/token",
            data={**form, "refresh_token": "old"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert bad_grant.status_code == 400 and bad_grant.json()["error"] == "invalid_grant"


async def test_control_endpoints(http: httpx.AsyncClient, sim: PipedriveSimulator) -> None:
    seeded = (await http.post("/_sandbox/pipedrive/persons", json={"count": 3, "seed": 1})).json()
    assert len(seeded) == 3 and all(p["email"][0]["value"].endswith("@example.com") for p in seeded)
    changed = await http.put(
        f"/_sandbox/pipedrive/persons/{seeded[0]['id']}", json={"name": "New Name"}
    )
    assert changed.json()["first_name"] == "New"
    assert (await http.delete(f"/_sandbox/pipedrive/persons/{seeded[1]['id']}")).status_code == 204
    hooks = await http.patch("/_sandbox/pipedrive/webhooks", json={"url": "http://127.0.0.1:9/x"})
    assert hooks.json()["settings"]["url"] == "http://127.0.0.1:9/x"
    assert sim.log.count() == 0  # control calls are not logged
