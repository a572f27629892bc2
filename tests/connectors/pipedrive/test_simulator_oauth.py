"""The Pipedrive simulator's authorization-code grant over HTTP: the consent page, Allow and
Deny, the code exchange with HTTP Basic app credentials (single use, 5-minute expiry, client,
redirect URI, PKCE), the issued tokens on the API and ``/v1/users/me`` naming the company."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from switchboard.connectors.pipedrive.simulator import (
    API_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    PipedriveSimulator,
)
from switchboard.http.testing import FakeClock
from switchboard.sandbox.oauth import s256
from tests.connectors.hubspot.test_simulator_oauth import callback_app
from tests.console.test_e2e import CHROMIUM, CHROMIUM_ARGS, _require_browser

REDIRECT = "http://127.0.0.1:9/oauth/callback"
VERIFIER = "pipedrive-verifier-0123456789-0123456789-abcdef"
SANDBOX_COMPANY = 7_000_001


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture
def sim(clock: FakeClock) -> PipedriveSimulator:
    return PipedriveSimulator(persons=2, clock=clock.time)


@pytest.fixture
async def http(
    sim: PipedriveSimulator, asgi_server: Callable[[Any], str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=asgi_server(sim.app)) as c:
        yield c


def params(**overrides: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "state": "st-9",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def approve(
    http: httpx.AsyncClient, account: str = str(SANDBOX_COMPANY), **overrides: str | None
) -> str:
    form = {**params(**overrides), "account": account, "decision": "allow"}
    return query(await http.post("/oauth/authorize", data=form))["code"]


async def exchange(
    http: httpx.AsyncClient, code: str, *, auth: dict[str, str] | None = None, **overrides: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code": code,
        "code_verifier": VERIFIER,
        **overrides,
    }
    return await http.post("/oauth/token", data=form, headers=basic() if auth is None else auth)


def refused(response: httpx.Response, message: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["message"] == message, body


async def test_consent_page_names_the_app_scopes_and_default_company(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/oauth/authorize", params=params())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert CLIENT_ID in page.text
    assert "<li>base</li>" in page.text and "<li>contacts:full</li>" in page.text
    assert f'name=account value="{SANDBOX_COMPANY}"' in page.text
    assert "value=allow>Allow</button>" in page.text and "value=deny>Deny</button>" in page.text


async def test_allow_then_exchange_answers_pipedrive_tokens(http: httpx.AsyncClient) -> None:
    form = {**params(), "account": "7000042", "decision": "allow"}
    got = query(await http.post("/oauth/authorize", data=form))
    assert got["state"] == "st-9"
    answer = await exchange(http, got["code"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["access_token"] and body["refresh_token"]
    assert body["scope"] == "base,contacts:full"
    assert body["api_domain"] == str(http.base_url).rstrip("/")


async def test_deny_redirects_with_access_denied(http: httpx.AsyncClient) -> None:
    got = query(await http.post("/oauth/authorize", data={**params(), "decision": "deny"}))
    assert got["error"] == "access_denied" and got["state"] == "st-9" and "code" not in got


async def test_unknown_client_or_unregistered_redirect_gets_a_page(
    clock: FakeClock, asgi_server: Callable[[Any], str]
) -> None:
    sim = PipedriveSimulator(redirect_uris=[REDIRECT], clock=clock.time)
    async with httpx.AsyncClient(base_url=asgi_server(sim.app)) as http:
        for bad in (params(client_id="nope"), params(redirect_uri=REDIRECT + "/x")):
            answer = await http.get("/oauth/authorize", params=bad)
            assert answer.status_code == 400 and "location" not in answer.headers
            assert "Pipedrive: authorization failed" in answer.text


async def test_a_code_works_once_and_expires_after_five_minutes(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    code = await approve(http)
    assert (await exchange(http, code)).status_code == 200
    refused(await exchange(http, code), "Invalid grant: authorization_code is invalid")

    fresh, stale = await approve(http), await approve(http)
    clock.advance(299)
    assert (await exchange(http, fresh)).status_code == 200
    clock.advance(1)
    refused(await exchange(http, stale), "Invalid grant: authorization_code has expired")


async def test_verifier_client_and_redirect_uri_must_match(
    http: httpx.AsyncClient, sim: PipedriveSimulator
) -> None:
    refused(
        await exchange(http, await approve(http), code_verifier="wrong"),
        "Invalid grant: code_verifier is invalid",
    )
    refused(
        await exchange(http, await approve(http), redirect_uri=REDIRECT + "2"),
        "Invalid request: redirect_uri is invalid",
    )
    sim.clients["other-app"] = "other-secret"
    refused(
        await exchange(http, await approve(http), auth=basic("other-app", "other-secret")),
        "Invalid grant: authorization_code is invalid",
    )
    refused(
        await exchange(http, await approve(http), auth=basic(secret="guess")),
        "Invalid client: client is invalid",
        status=401,
    )
    refused(
        await exchange(http, await approve(http), auth={}),
        "Invalid client: cannot retrieve client credentials",
        status=401,
    )
    refused(
        await exchange(http, await approve(http), grant_type="password"),
        "Unsupported grant type: grant_type is invalid",
    )


async def test_tokens_work_on_the_api_name_the_company_and_refresh(
    http: httpx.AsyncClient,
) -> None:
    tokens = (await exchange(http, await approve(http, account="7000042"))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    persons = await http.get("/v1/persons", headers=bearer)
    assert persons.status_code == 200 and len(persons.json()["data"]) == 2

    me = await http.get("/v1/users/me", headers=bearer)
    assert me.status_code == 200
    data = me.json()["data"]
    assert me.json()["success"] is True
    assert data["company_id"] == 7000042 and data["company_domain"] == "sandbox-7000042"
    assert isinstance(data["id"], int) and "@" in data["email"]

    refreshed = await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(),
    )
    assert refreshed.status_code == 200, refreshed.text
    again = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await http.get("/v1/users/me", headers=again)).json()["data"]["company_id"] == 7000042

    other = await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "never-issued"},
        headers=basic(),
    )
    refused(other, "Invalid grant: refresh_token is invalid")


async def test_users_me_with_the_api_token_or_the_well_known_refresh_token(
    http: httpx.AsyncClient,
) -> None:
    me = await http.get("/v1/users/me", headers={"x-api-token": API_TOKEN})
    assert me.json()["data"]["company_id"] == SANDBOX_COMPANY
    assert me.json()["data"]["company_domain"] == "sandbox"  # the host its webhooks name
    refreshed = await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN},
        headers=basic(),
    )
    bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await http.get("/v1/users/me", headers=bearer)).json()["data"][
        "company_id"
    ] == SANDBOX_COMPANY
    assert (await http.get("/v1/users/me")).status_code == 401


async def test_auto_approve_and_the_recorded_events(http: httpx.AsyncClient) -> None:
    switched = await http.patch("/_sandbox/pipedrive/oauth", json={"auto_approve": True})
    assert switched.status_code == 200 and switched.json()["auto_approve"] is True
    code = query(await http.get("/oauth/authorize", params=params()))["code"]
    await exchange(http, code, code_verifier="wrong")

    state = (await http.get("/_sandbox/pipedrive/oauth")).json()
    events = [(e["event"], e.get("reason")) for e in state["events"]]
    assert events == [("authorized", None), ("exchange_refused", "verifier")]
    (grant,) = state["grants"]
    assert grant["account_id"] == SANDBOX_COMPANY and grant["client_id"] == CLIENT_ID
    bad = await http.patch("/_sandbox/pipedrive/oauth", json={"redirect_uris": "x"})
    assert bad.status_code == 400


async def test_a_refresh_token_is_bound_to_its_app(
    http: httpx.AsyncClient, sim: PipedriveSimulator
) -> None:
    sim.clients["other-app"] = "other-secret"
    tokens = (await exchange(http, await approve(http))).json()
    answer = await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic("other-app", "other-secret"),
    )
    refused(answer, "Invalid grant: refresh_token is invalid")


@pytest.mark.acceptance
async def test_in_chromium_the_user_picks_a_company_and_allows(
    http: httpx.AsyncClient, asgi_server: Callable[[Any], str]
) -> None:
    pw = _require_browser()
    redirect = asgi_server(callback_app()) + "/oauth/callback"
    authorize = httpx.URL(str(http.base_url.join("/oauth/authorize")))
    url = str(authorize.copy_merge_params(params(redirect_uri=redirect)))
    async with pw.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.get_by_label("Pipedrive company (company id)").fill("7000099")
            await page.get_by_role("button", name="Allow").click()
            await pw.expect(page).to_have_url(re.compile(re.escape(redirect) + r"\?code="))
            got = dict(parse_qs(urlsplit(page.url).query))
        finally:
            await browser.close()
    assert got["state"] == ["st-9"]
    tokens = (await exchange(http, got["code"][0], redirect_uri=redirect)).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = await http.get("/v1/users/me", headers=bearer)
    assert me.json()["data"]["company_id"] == 7000099
