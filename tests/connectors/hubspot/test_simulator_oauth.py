"""The HubSpot simulator's authorization-code grant over HTTP: the consent page, its Allow and
Deny redirects, the code exchange's rules (single use, expiry, client, redirect URI, PKCE), the
issued tokens on the API, and the access-token metadata that names the portal."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from switchboard.connectors.hubspot.simulator import CLIENT_ID, CLIENT_SECRET, HubSpotSimulator
from switchboard.http.testing import FakeClock
from switchboard.sandbox.oauth import s256
from tests.console.test_e2e import CHROMIUM, CHROMIUM_ARGS, _require_browser

REDIRECT = "http://127.0.0.1:9/oauth/callback"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
SCOPES = "oauth crm.objects.contacts.read crm.objects.contacts.write"


def test_s256_matches_rfc_7636_appendix_b() -> None:
    assert s256(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> HubSpotSimulator:
    return HubSpotSimulator(contacts=3, clock=clock.time)


@pytest.fixture
async def http(
    sim: HubSpotSimulator, asgi_server: Callable[[Any], str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=asgi_server(sim.app)) as c:
        yield c


def params(**overrides: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": SCOPES,
        "state": "st-1",
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


async def approve(http: httpx.AsyncClient, account: str = "62515", **overrides: str | None) -> str:
    """What the page's Allow posts: the authorize parameters, the account and the decision."""
    form = {**params(**overrides), "account": account, "decision": "allow"}
    return query(await http.post("/oauth/authorize", data=form))["code"]


async def exchange(http: httpx.AsyncClient, code: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "code": code,
        "code_verifier": VERIFIER,
        **overrides,
    }
    return await http.post("/oauth/v1/token", data=form)


def refused(response: httpx.Response, status: str) -> None:
    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["error"]) == (status, "invalid_grant"), body


async def test_consent_page_names_the_app_scopes_and_default_portal(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/oauth/authorize", params=params(scope="oauth <b>x</b>"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert CLIENT_ID in html and "<li>oauth</li>" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # escaped
    assert 'name=account value="62515"' in html  # the portal the webhooks carry
    assert "value=allow>Allow</button>" in html and "value=deny>Deny</button>" in html
    assert 'method=post action="/oauth/authorize"' in html


async def test_allow_redirects_with_a_code_for_the_chosen_portal(
    http: httpx.AsyncClient,
) -> None:
    form = {**params(), "account": "777", "decision": "allow"}
    got = query(await http.post("/oauth/authorize", data=form))
    assert got["state"] == "st-1" and got["code"]

    answer = await exchange(http, got["code"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 1800
    assert body["access_token"] and body["refresh_token"]
    assert body["hub_id"] == 777 and body["scopes"] == SCOPES.split()


async def test_deny_redirects_with_access_denied_and_the_state(http: httpx.AsyncClient) -> None:
    form = {**params(state="keep me"), "decision": "deny"}
    got = query(await http.post("/oauth/authorize", data=form))
    assert got["error"] == "access_denied" and got["error_description"]
    assert got["state"] == "keep me" and "code" not in got


async def test_unknown_client_or_unregistered_redirect_gets_a_page_not_a_redirect(
    clock: FakeClock, asgi_server: Callable[[Any], str]
) -> None:
    sim = HubSpotSimulator(redirect_uris=[REDIRECT], clock=clock.time)
    async with httpx.AsyncClient(base_url=asgi_server(sim.app)) as http:
        for bad in (
            params(client_id="nope"),
            params(redirect_uri="http://127.0.0.1:9/elsewhere"),
            params(redirect_uri=None),
        ):
            for answer in (
                await http.get("/oauth/authorize", params=bad),
                await http.post("/oauth/authorize", data={**bad, "decision": "allow"}),
            ):
                assert answer.status_code == 400 and "location" not in answer.headers
                assert "authorization failed" in answer.text
        assert (await http.get("/oauth/authorize", params=params())).status_code == 200
    # Without registered URIs, any absolute http(s) URL goes; others do not.
    async with httpx.AsyncClient(base_url=asgi_server(HubSpotSimulator().app)) as http:
        for uri in ("javascript:alert(1)", "/relative", REDIRECT + "#frag"):
            answer = await http.get("/oauth/authorize", params=params(redirect_uri=uri))
            assert answer.status_code == 400, uri


async def test_bad_pkce_method_or_response_type_redirects_with_an_error(
    http: httpx.AsyncClient,
) -> None:
    for bad, error in (
        (params(code_challenge_method="plain"), "invalid_request"),
        (params(code_challenge_method=None), "invalid_request"),
        (params(response_type="token"), "unsupported_response_type"),
    ):
        got = query(await http.get("/oauth/authorize", params=bad))
        assert got["error"] == error and got["state"] == "st-1"


async def test_a_non_numeric_account_shows_the_page_again(http: httpx.AsyncClient) -> None:
    form = {**params(), "account": "abc", "decision": "allow"}
    answer = await http.post("/oauth/authorize", data=form)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "numeric account id" in answer.text and "value=allow>Allow" in answer.text


async def test_a_code_works_once(http: httpx.AsyncClient) -> None:
    code = await approve(http)
    assert (await exchange(http, code)).status_code == 200
    refused(await exchange(http, code), "BAD_AUTH_CODE")
    refused(await exchange(http, "never-issued"), "BAD_AUTH_CODE")


async def test_a_code_expires_after_ten_minutes(http: httpx.AsyncClient, clock: FakeClock) -> None:
    fresh, stale = await approve(http), await approve(http)
    clock.advance(599)
    assert (await exchange(http, fresh)).status_code == 200
    clock.advance(1)
    answer = await exchange(http, stale)
    refused(answer, "BAD_AUTH_CODE")
    assert "expired" in answer.json()["message"]


async def test_the_verifier_must_match_the_challenge(http: httpx.AsyncClient) -> None:
    refused(await exchange(http, await approve(http), code_verifier="x" * 43), "BAD_CODE_VERIFIER")
    refused(await exchange(http, await approve(http), code_verifier=""), "BAD_CODE_VERIFIER")
    # A refused exchange spends the code: the right verifier afterwards is too late.
    code = await approve(http)
    refused(await exchange(http, code, code_verifier="wrong"), "BAD_CODE_VERIFIER")
    refused(await exchange(http, code), "BAD_AUTH_CODE")
    # Without a challenge at authorize time, no verifier is asked for.
    plain = await approve(http, code_challenge=None, code_challenge_method=None)
    assert (await exchange(http, plain, code_verifier="")).status_code == 200


async def test_a_code_is_bound_to_its_client_and_redirect_uri(
    http: httpx.AsyncClient, sim: HubSpotSimulator
) -> None:
    sim.clients["other-app"] = "other-secret"
    refused(
        await exchange(http, await approve(http), redirect_uri=REDIRECT + "2"), "BAD_REDIRECT_URI"
    )
    code = await approve(http)
    other = {"client_id": "other-app", "client_secret": "other-secret"}
    refused(await exchange(http, code, **other), "BAD_AUTH_CODE")

    wrong_secret = await exchange(http, await approve(http), client_secret="guess")
    assert wrong_secret.status_code == 400
    assert wrong_secret.json()["status"] == "BAD_CLIENT_SECRET"
    assert wrong_secret.json()["error"] == "invalid_client"
    unknown = await exchange(http, await approve(http), client_id="nope")
    assert unknown.json()["status"] == "BAD_CLIENT_ID"


async def test_issued_tokens_work_on_the_api_name_the_portal_and_refresh(
    http: httpx.AsyncClient,
) -> None:
    tokens = (await exchange(http, await approve(http, account="4242"))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    contacts = await http.get("/crm/v3/objects/contacts", headers=bearer)
    assert contacts.status_code == 200 and len(contacts.json()["results"]) == 3

    info = await http.get(f"/oauth/v1/access-tokens/{tokens['access_token']}")
    assert info.status_code == 200
    body = info.json()
    assert body["token"] == tokens["access_token"] and body["token_type"] == "access"
    assert body["hub_id"] == 4242 and body["scopes"] == SCOPES.split()
    assert body["user"] == "sandbox-user@example.com" and isinstance(body["user_id"], int)
    assert body["hub_domain"] and body["app_id"] == 1160452
    assert 1790 <= body["expires_in"] <= 1800

    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": tokens["refresh_token"],
    }
    refreshed = await http.post("/oauth/v1/token", data=form)
    assert refreshed.status_code == 200, refreshed.text
    again = refreshed.json()
    assert again["hub_id"] == 4242 and again["refresh_token"] != tokens["refresh_token"]
    info = await http.get(f"/oauth/v1/access-tokens/{again['access_token']}")
    assert info.json()["hub_id"] == 4242
    bearer = {"Authorization": f"Bearer {again['access_token']}"}
    assert (await http.get("/crm/v3/objects/contacts", headers=bearer)).status_code == 200
    # Rotation: the first refresh token is spent.
    spent = await http.post("/oauth/v1/token", data=form)
    assert spent.json()["status"] == "BAD_REFRESH_TOKEN"


async def test_a_refresh_token_is_bound_to_its_app(
    http: httpx.AsyncClient, sim: HubSpotSimulator
) -> None:
    sim.clients["other-app"] = "other-secret"
    tokens = (await exchange(http, await approve(http))).json()
    form = {
        "grant_type": "refresh_token",
        "client_id": "other-app",
        "client_secret": "other-secret",
        "refresh_token": tokens["refresh_token"],
    }
    answer = await http.post("/oauth/v1/token", data=form)
    assert answer.json()["status"] == "BAD_REFRESH_TOKEN"


async def test_token_metadata_for_unknown_or_private_app_tokens_is_404(
    http: httpx.AsyncClient,
) -> None:
    for token in ("nope", "pat-sandbox"):
        answer = await http.get(f"/oauth/v1/access-tokens/{token}")
        assert answer.status_code == 404 and answer.json()["status"] == "error"


async def test_the_well_known_refresh_token_belongs_to_the_webhooks_portal(
    http: httpx.AsyncClient,
) -> None:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": "sandbox-refresh-token",
    }
    token = (await http.post("/oauth/v1/token", data=form)).json()["access_token"]
    info = (await http.get(f"/oauth/v1/access-tokens/{token}")).json()
    assert info["hub_id"] == 62515


def callback_app() -> Starlette:
    """The app's redirect target: answers the query it was sent to."""

    async def callback(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.query_params))

    return Starlette(routes=[Route("/oauth/callback", callback)])


async def test_auto_approve_lets_httpx_follow_the_redirects(
    http: httpx.AsyncClient, asgi_server: Callable[[Any], str]
) -> None:
    redirect = asgi_server(callback_app()) + "/oauth/callback"
    switched = await http.patch("/_sandbox/hubspot/oauth", json={"auto_approve": True})
    assert switched.json()["auto_approve"] is True
    url = str(http.base_url.join("/oauth/authorize"))
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        landed = await browser.get(url, params=params(redirect_uri=redirect))
    assert landed.status_code == 200 and str(landed.url).startswith(redirect)
    got = landed.json()
    assert got["state"] == "st-1"
    tokens = (await exchange(http, got["code"], redirect_uri=redirect)).json()
    info = await http.get(f"/oauth/v1/access-tokens/{tokens['access_token']}")
    assert info.json()["hub_id"] == 62515


async def test_the_control_state_records_every_authorize_and_exchange(
    http: httpx.AsyncClient,
) -> None:
    code = await approve(http, account="55")
    await http.post("/oauth/authorize", data={**params(), "decision": "deny"})
    await http.get("/oauth/authorize", params=params(client_id="nope"))
    await exchange(http, code)
    await exchange(http, code)

    state = (await http.get("/_sandbox/hubspot/oauth")).json()
    events = [(e["event"], e.get("reason") or e.get("error")) for e in state["events"]]
    assert events == [
        ("authorized", None),
        ("denied", "access_denied"),
        ("authorize_refused", "unknown_client"),
        ("exchanged", None),
        ("exchange_refused", "used_code"),
    ]
    (grant,) = state["grants"]
    assert grant["code"] == code and grant["account_id"] == 55 and grant["pkce"] is True
    assert grant["redeemed_at"] is not None and grant["state"] == "st-1"

    limited = await http.patch("/_sandbox/hubspot/oauth", json={"redirect_uris": [REDIRECT]})
    assert limited.json()["redirect_uris"] == [REDIRECT]
    bad = await http.patch("/_sandbox/hubspot/oauth", json={"auto_approve": "yes"})
    assert bad.status_code == 400


@pytest.mark.acceptance
async def test_in_chromium_the_user_picks_a_portal_and_allows_or_denies(
    http: httpx.AsyncClient, asgi_server: Callable[[Any], str]
) -> None:
    """The page as a browser submits it: the button's name and value, the edited portal id."""
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
            await pw.expect(page.get_by_role("heading")).to_contain_text("HubSpot")
            await page.get_by_label("HubSpot account (portal id)").fill("31337")
            await page.get_by_role("button", name="Allow").click()
            await pw.expect(page).to_have_url(re.compile(re.escape(redirect) + r"\?code="))
            allowed = dict(parse_qs(urlsplit(page.url).query))

            await page.goto(url)
            await page.get_by_role("button", name="Deny").click()
            await pw.expect(page).to_have_url(re.compile(r"error=access_denied"))
            denied = dict(parse_qs(urlsplit(page.url).query))
        finally:
            await browser.close()
    assert allowed["state"] == ["st-1"] and denied["state"] == ["st-1"]
    tokens = (await exchange(http, allowed["code"][0], redirect_uri=redirect)).json()
    info = await http.get(f"/oauth/v1/access-tokens/{tokens['access_token']}")
    assert info.json()["hub_id"] == 31337
