"""The connect flow against the HubSpot and Pipedrive simulators over real HTTP: a link, the
consent page, the callback, the connection made or re-authorised, and every way it fails."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from switchboard.config import HubConfig
from switchboard.connectors.hubspot.simulator import CLIENT_ID, CLIENT_SECRET, HubSpotSimulator
from switchboard.connectors.pipedrive import simulator as pipedrive_sim
from switchboard.connectors.pipedrive.simulator import PipedriveSimulator
from switchboard.db import Database, utcnow
from switchboard.models import ConnectSession, Credential, OAuthAttempt
from tests.console.test_e2e import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.support import eventually, serve_in_loop

RETURN = "https://product.example/connected?step=2"


@pytest.fixture
def hubspot() -> HubSpotSimulator:
    return HubSpotSimulator(contacts=3, auto_approve=True)


@pytest.fixture
def pipedrive() -> PipedriveSimulator:
    return PipedriveSimulator(auto_approve=True)


@pytest.fixture
def urls(
    hubspot: HubSpotSimulator, pipedrive: PipedriveSimulator, asgi_server: Callable[[Any], str]
) -> dict[str, str]:
    return {"hubspot": asgi_server(hubspot.app), "pipedrive": asgi_server(pipedrive.app)}


@pytest.fixture
def hub_config(urls: dict[str, str]) -> HubConfig:
    return HubConfig.model_validate(
        {
            "integrations": {
                "hs": {
                    "provider": "hubspot",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "base_url": urls["hubspot"],
                    "authorize_url": urls["hubspot"] + "/oauth/authorize",
                },
                "pd": {
                    "provider": "pipedrive",
                    "client_id": pipedrive_sim.CLIENT_ID,
                    "client_secret": pipedrive_sim.CLIENT_SECRET,
                    "base_url": urls["pipedrive"],
                    "authorize_url": urls["pipedrive"] + "/oauth/authorize",
                    "token_url": urls["pipedrive"] + "/oauth/token",
                },
                "no-secret": {"provider": "hubspot", "client_id": "x"},
            }
        }
    )


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The end user's browser for the provider's pages (real HTTP, no redirects followed)."""
    async with httpx.AsyncClient() as c:
        yield c


async def link(client: httpx.AsyncClient, **body: Any) -> str:
    payload = {
        "integration": "hs",
        "end_user": {"id": "u-7", "email": "u7@example.com"},
        "tags": ["beta"],
        "return_url": RETURN,
        **body,
    }
    r = await client.post("/connect/sessions", json=payload)
    assert r.status_code == 201, r.text
    assert r.json()["url"] == f"http://hub/connect/{r.json()['token']}"
    url: str = r.json()["url"]
    return url


async def to_provider(client: httpx.AsyncClient, url: str) -> str:
    r = await client.get(url)
    assert r.status_code == 302, r.text
    location: str = r.headers["location"]
    return location


async def consent(browser: httpx.AsyncClient, authorize: str) -> str:
    """The provider's page, auto-approved: back to our callback."""
    r = await browser.get(authorize)
    assert r.status_code == 302, r.text
    callback: str = r.headers["location"]
    assert callback.startswith("http://hub/oauth/callback?")
    return callback


async def run_flow(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, **body: Any
) -> httpx.Response:
    callback = await consent(browser, await to_provider(client, await link(client, **body)))
    return await client.get(callback)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_a_link_connects_the_end_users_account(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    authorize = await to_provider(client, await link(client))
    sent = query(authorize)
    assert authorize.startswith("http://127.0.0.1:") and "/oauth/authorize?" in authorize
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["redirect_uri"] == "http://hub/oauth/callback"
    assert sent["scope"] == "crm.objects.contacts.read crm.objects.contacts.write"
    r = await client.get(await consent(browser, authorize))
    assert r.status_code == 302, r.text
    back = r.headers["location"]
    assert back.startswith("https://product.example/connected?step=2&")
    cid = query(back)["connection"]
    assert query(back)["outcome"] == "connected"
    one = (await client.get(f"/connections/{cid}")).json()
    assert one["integration"] == "hs" and one["account"] == "62515"
    assert one["end_user"]["id"] == "u-7" and one["tags"] == ["beta"]
    assert one["auth"] == "oauth2" and one["status"] == "ok"
    # The stored refresh token works: the proxy reaches the portal with the connection's token.
    r = await client.get(f"/proxy/{cid}/crm/v3/objects/contacts")
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 3


async def test_the_same_end_user_and_portal_again_reauthorises_and_clears_needs_reauth(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, db: Database
) -> None:
    first = query((await run_flow(client, browser)).headers["location"])["connection"]
    async with db.session() as session:
        session.add(
            Credential(
                connection=first,
                kind="oauth2",
                config_fingerprint="old",
                refresh_token="x",
                needs_reauth=True,
                reauth_reason="invalid_grant",
                updated_at=utcnow(),
            )
        )
    again = query((await run_flow(client, browser)).headers["location"])
    assert again == {"step": "2", "connection": first, "outcome": "reauthorised"}
    assert len((await client.get("/connections")).json()["items"]) == 1
    async with db.read_session() as session:
        cred = await session.get(Credential, first)
        assert cred is not None and cred.needs_reauth is False
    # A link made for the connection re-authorises it too.
    named = query((await run_flow(client, browser, connection=first)).headers["location"])
    assert named["outcome"] == "reauthorised" and named["connection"] == first
    # Another end user connecting the same portal gets a connection of their own.
    other = await run_flow(client, browser, end_user={"id": "u-8"})
    assert query(other.headers["location"])["connection"] != first


async def test_pipedrive_connects_with_basic_client_auth_and_names_the_company(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    pipedrive: PipedriveSimulator,
    urls: dict[str, str],
) -> None:
    r = await run_flow(client, browser, integration="pd", return_url=None)
    assert r.status_code == 200 and "is connected" in r.text  # no return_url: a message
    items = (await client.get("/connections", params={"integration": "pd"})).json()["items"]
    assert [i["account"] for i in items] == ["7000001"]
    # The company's own API host (the token answer's api_domain), not the integration's.
    one = (await client.get(f"/connections/{items[0]['id']}")).json()
    assert one["settings"]["base_url"] == urls["pipedrive"] + "/api"
    r = await client.get(f"/proxy/{items[0]['id']}/v1/persons")
    assert r.status_code == 200, r.text
    assert pipedrive.log.entries()[-1]["path"] == "/api/v1/persons"


async def test_a_link_works_once_and_expires(client: httpx.AsyncClient, db: Database) -> None:
    url = await link(client)
    await to_provider(client, url)
    again = await client.get(url)
    assert again.status_code == 410 and "opened before" in again.json()["detail"]
    page = await client.get(url, headers={"Accept": "text/html,*/*;q=0.8"})  # a browser's
    assert page.status_code == 410 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Link already used</h1>" in page.text
    late = await link(client)
    async with db.session() as session:
        await session.execute(
            update(ConnectSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    r = await client.get(late)
    assert r.status_code == 410 and "expired" in r.text
    assert (await client.get("/connect/nope")).status_code == 404


async def test_denied_consent_gets_a_page_and_is_recorded(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, db: Database, hubspot: HubSpotSimulator
) -> None:
    authorize = await to_provider(client, await link(client))
    form = {**query(authorize), "account": "62515", "decision": "deny"}
    r = await browser.post(authorize.split("?")[0], data=form)
    callback = r.headers["location"]
    r = await client.get(callback)
    assert r.status_code == 403 and "The provider said: " in r.json()["detail"]
    assert (await client.get("/connections")).json()["items"] == []
    async with db.read_session() as session:
        attempt = (await session.scalars(select(OAuthAttempt))).one()
    assert attempt.outcome == "denied" and "access_denied" in (attempt.error or "")


async def test_a_state_is_single_use_and_expires(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, db: Database
) -> None:
    callback = await consent(browser, await to_provider(client, await link(client)))
    assert (await client.get(callback)).status_code == 302
    reused = await client.get(callback)
    assert reused.status_code == 400 and "completed before" in reused.text
    callback = await consent(browser, await to_provider(client, await link(client)))
    async with db.session() as session:
        await session.execute(
            update(OAuthAttempt)
            .where(OAuthAttempt.used_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    r = await client.get(callback)
    assert r.status_code == 400 and "more than 10 minutes" in r.text
    r = await client.get("/oauth/callback", params={"state": "forged", "code": "x"})
    assert r.status_code == 400 and "not one we started" in r.text
    async with db.read_session() as session:
        outcomes = sorted(
            str(a.outcome) for a in (await session.scalars(select(OAuthAttempt))).all()
        )
    assert outcomes == ["connected", "expired"]


async def test_a_failed_code_exchange_gets_a_page_and_is_recorded(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, db: Database
) -> None:
    callback = await consent(browser, await to_provider(client, await link(client)))
    params = query(callback)
    r = await client.get("/oauth/callback", params={**params, "code": "not-a-code"})
    assert r.status_code == 502 and "did not accept" in r.text
    async with db.read_session() as session:
        attempt = (await session.scalars(select(OAuthAttempt))).one()
    assert attempt.outcome == "exchange_failed" and "400" in (attempt.error or "")
    assert (await client.get("/connections")).json()["items"] == []


async def test_sessions_need_an_oauth_integration_with_its_secret(
    client: httpx.AsyncClient,
) -> None:
    for body, needle in (
        ({"integration": "nope"}, "nope"),
        ({"integration": "no-secret"}, "client_secret"),
        ({"integration": "hs", "return_url": "javascript:alert(1)"}, "return_url"),
        ({"integration": "hs", "connection": "nope"}, "nope"),
    ):
        r = await client.post("/connect/sessions", json=body)
        assert r.status_code in (404, 422) and needle in str(r.json()["detail"]), r.text
    r = await client.post(
        "/connect/sessions", json={"integration": "hs"}, headers={"X-API-Key": ""}
    )
    assert r.status_code == 401


@pytest.mark.acceptance
async def test_in_chromium_an_end_user_connects_from_the_link(
    client: httpx.AsyncClient,
    app: Any,
    hubspot: HubSpotSimulator,
    asgi_server: Callable[[Any], str],
) -> None:
    """The whole flow as a browser walks it: the link, the consent page (a portal picked and
    allowed), the callback, the product's return page."""
    _require_browser()
    hubspot.oauth.auto_approve = False
    landing = asgi_server(_landing_app()) + "/done"
    async with serve_in_loop(app) as hub:
        await _walk(client, hub, landing)


async def _walk(client: httpx.AsyncClient, hub: str, landing: str) -> None:
    pw = _require_browser()
    r = await client.post(
        "/connect/sessions",
        json={"integration": "hs", "end_user": {"id": "u-9"}, "return_url": landing},
    )
    url = r.json()["url"].replace("http://hub", hub)
    async with pw.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.get_by_label("HubSpot account (portal id)").fill("4242")
            await page.get_by_role("button", name="Allow").click()
            await pw.expect(page).to_have_url(re.compile(re.escape(landing) + r"\?connection="))
            back = query(page.url)
        finally:
            await browser.close()
    one = (await client.get(f"/connections/{back['connection']}")).json()
    assert one["account"] == "4242" and one["end_user"]["id"] == "u-9"


def _landing_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def done(_: Any) -> PlainTextResponse:
        return PlainTextResponse("connected")

    return Starlette(routes=[Route("/done", done)])


async def test_a_refused_refresh_token_flags_the_connection_until_reauthorised(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    r = await client.post(
        "/connections",
        json={
            "integration": "hs",
            "name": "stale",
            "account": "62515",
            "end_user": {"id": "u-7"},
            "auth": {"type": "oauth2", "refresh_token": "revoked-long-ago"},
        },
    )
    cid = r.json()["id"]
    r = await client.get(f"/proxy/{cid}/crm/v3/objects/contacts")
    assert r.status_code in (401, 502, 503), r.text

    async def flagged() -> bool:  # every process sees it at its next catalog check
        listed = (await client.get("/connections", params={"status": "needs_reauth"})).json()
        return [i["id"] for i in listed["items"]] == [cid]

    await eventually(flagged)
    events = (await client.get("/changes", params={"type": "connection.needs_reauth"})).json()
    assert [e["subject"] for e in events["items"]] == [f"connection:{cid}"]
    # The end user re-authorises it from a link made for it.
    back = query((await run_flow(client, browser, connection="stale")).headers["location"])
    assert back["outcome"] == "reauthorised" and back["connection"] == cid
    assert (await client.get(f"/connections/{cid}")).json()["status"] == "ok"
    assert (await client.get(f"/proxy/{cid}/crm/v3/objects/contacts")).status_code == 200


@pytest.mark.parametrize("url", ["http://[", "http://x:99999/", "ftp://x/", "/relative", "http://"])
async def test_a_bad_return_url_is_a_422(client: httpx.AsyncClient, url: str) -> None:
    r = await client.post("/connect/sessions", json={"integration": "hs", "return_url": url})
    assert r.status_code == 422 and "return_url" in str(r.json()["detail"])
