"""Hostile input to the console: malformed session cookies, form posts, ids and query values.

Every answer is a page, a redirect or a JSON error with a 3xx/4xx status, never a 5xx: a
malformed cookie is no session (the login page, or a new open session), whatever its bytes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from tests.console.helpers import csrf_token, login
from tests.support import API_KEY, make_settings

NOW = int(time.time())
SIG = "a" * 64
OPEN_COOKIE = f"{NOW}.nonce.open".encode()
# Raw header bytes: the server decodes them as Latin-1, so b"\xb2" arrives as "²", a character
# for which str.isdigit() is true and int() fails.
BAD_COOKIES: list[bytes] = [
    b"\xb2\xb3.nonce." + SIG.encode(),  # non-ASCII digits
    b"\xb9" + str(NOW).encode() + b".nonce.open",
    b"9" * 5000 + b".nonce." + SIG.encode(),  # a 5,000-digit first field
    b"1" * 13 + b".nonce." + SIG.encode(),  # a year far beyond the TTL
    f"-{NOW}.nonce.{SIG}".encode(),
    f"{NOW}.nonce.".encode() + b"\xe9" * 64,  # non-ASCII signature
    f"{NOW}.".encode() + b"\xff" * 32 + f".{SIG}".encode(),  # non-ASCII nonce
    f"{NOW}.nonce.{'0' * 64}".encode(),  # well formed, wrong signature
    OPEN_COOKIE,  # an open session while keys are configured
    b"x" * 4000,  # overlong, no fields
    f"{NOW}.{'n' * 3000}.{SIG}".encode(),  # overlong nonce
    b"!!!@@@==",  # garbage base64
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",  # a JWT, base64 everywhere
    b"a.b",  # two fields
    f"{NOW}.a.b.{SIG}".encode(),  # four fields
    b"..",
    b".",
    b'"quoted"',
    b"",
]
GET_PAGES = [
    "/console",
    "/console/connections",
    "/console/connections/events",
    "/console/connect",
    "/console/jobs",
    "/console/jobs/1",
    "/console/webhooks",
    "/console/feed",
    "/console/tasks",
    "/console/users",
    "/console/users/u1",
    "/console/contacts",
]
POSTS = [
    "/console/logout",
    "/console/connections/events/sync",
    "/console/jobs/1/replay",
    "/console/connect",
    "/console/connections/events/reauthorise",
]


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig.model_validate(
        {"connections": {"events": {"kind": "xml_feed", "url": "http://127.0.0.1:9/feed"}}}
    )


def with_cookie(value: bytes) -> dict[str, Any]:
    return {"Cookie": b"switchboard_console=" + value}


def assert_no_5xx(r: httpx.Response, what: object) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])


# --- cookies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cookie", BAD_COOKIES, ids=range(len(BAD_COOKIES)))
async def test_a_malformed_cookie_is_no_session(client: httpx.AsyncClient, cookie: bytes) -> None:
    for path in GET_PAGES:
        r = await client.get(path, headers=with_cookie(cookie))
        assert_no_5xx(r, path)
        if path != "/console":
            assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    for path in POSTS:
        r = await client.post(path, data={"csrf": "x"}, headers=with_cookie(cookie))
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    page = await client.get("/console/login", headers=with_cookie(cookie))
    assert page.status_code == 200 and 'name="api_key"' in page.text
    # Error pages read the cookie too (to draw the navigation): they must not crash on it.
    for path, code in (("/console/static/nope.css", 404), ("/console/static/console.css", 200)):
        r = await client.get(path, headers=with_cookie(cookie))
        assert r.status_code == code, path


async def test_a_malformed_cookie_next_to_a_good_login_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    # Logging in over a broken cookie replaces it.
    r = await client.post(
        "/console/login", data={"api_key": "wrong"}, headers=with_cookie(BAD_COOKIES[0])
    )
    assert r.status_code == 401
    assert (await login(client)).status_code == 303
    assert (await client.get("/console/jobs")).status_code == 200


class TestOpenConsole:
    """No API key: a malformed cookie is no session, so the page opens a new one."""

    @pytest.fixture
    def settings(self, backend: Any, tmp_path: Any) -> Any:
        return make_settings(backend, tmp_path, api_keys=[])

    @pytest.fixture
    async def client(self, app: Any) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            yield c

    @pytest.mark.parametrize(
        "cookie", [c for c in BAD_COOKIES if c != OPEN_COOKIE], ids=range(len(BAD_COOKIES) - 1)
    )
    async def test_a_malformed_cookie_gets_a_new_session(
        self, client: httpx.AsyncClient, cookie: bytes
    ) -> None:
        for path in GET_PAGES:
            r = await client.get(path, headers=with_cookie(cookie))
            assert_no_5xx(r, path)
            if path not in ("/console", "/console/jobs/1", "/console/users/u1"):
                assert r.status_code == 200, path
                assert r.headers["set-cookie"].startswith("switchboard_console="), path
        r = await client.get("/console/static/nope.css", headers=with_cookie(cookie))
        assert r.status_code == 404
        r = await client.post(POSTS[1], data={"csrf": "x"}, headers=with_cookie(cookie))
        assert r.status_code == 403


# --- forms --------------------------------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_malformed_login_posts_are_refused(client: httpx.AsyncClient) -> None:
    bodies: list[tuple[bytes, dict[str, Any]]] = [
        (b"", FORM),
        (b"other=1", FORM),  # the field is missing
        (b"api_key=wrong&api_key=again&extra=1", FORM),  # repeated and extra fields
        (b"api_key=\xff\xfe\xb2", FORM),  # not UTF-8
        (b"api_key=%ff%fe%zz%", FORM),  # bad percent-encoding
        (b"api_key=%00", FORM),
        (b"api_key=" + b"9" * 900_000, FORM),  # overlong, under the body limit
        (b"&&&===&&", FORM),
        (b"\x00\x01\x02", FORM),
        (b'{"api_key": "x"}', {"Content-Type": "application/json"}),
        (b"--b\r\n\r\n--b--", {"Content-Type": "multipart/form-data; boundary=b"}),
        (b"api_key=x", {"Content-Type": b"application/x-www-form-urlencoded; charset=\xff"}),
    ]
    for body, headers in bodies:
        r = await client.post("/console/login", content=body, headers=headers)
        assert r.status_code == 401, (body[:40], r.status_code)
        assert "That API key is not valid." in r.text and "set-cookie" not in r.headers
    r = await client.post("/console/login", content=b"api_key=" + b"x" * 2_000_000, headers=FORM)
    assert r.status_code == 413 and "detail" in r.json()


async def test_malformed_action_posts_are_refused(client: httpx.AsyncClient) -> None:
    await login(client)
    token = await csrf_token(client)
    for body in (
        b"",
        b"csrf=",
        b"csrf=\xff\xfe",
        b"csrf=" + token.encode() + b"\xff",
        b"csrf=%ff%zz",
        b"csrf=" + b"x" * 500_000,
        b"full=1",  # no token
    ):
        for path in ("/console/connections/events/sync", "/console/logout", "/console/connect"):
            r = await client.post(path, content=body, headers=FORM)
            assert r.status_code == 403, (path, body[:40], r.status_code)
    still = await client.get("/console/jobs")
    assert still.status_code == 200  # none of those logged out
    ok = {"csrf": token}
    for path, code in (
        ("/console/jobs/-1/replay", 422),
        ("/console/jobs/0/replay", 422),
        ("/console/jobs/99999999999999999999/replay", 422),
        ("/console/jobs/1e3/replay", 422),
        ("/console/jobs/%C2%B2/replay", 422),
        ("/console/jobs/999999/replay", 404),
        ("/console/connections/nope/sync", 404),
        ("/console/connections/" + "x" * 5000 + "/sync", 404),
        ("/console/connections/%C2%B2/sync", 404),
        ("/console/connections/nope/reauthorise", 404),
        ("/console/connections/events/reauthorise", 422),  # of no integration
        ("/console/connect", 422),  # no integration named
    ):
        r = await client.post(path, data=ok)
        assert r.status_code == code, (path[:60], r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html")
    # A form field the action does not know changes nothing.
    r = await client.post(
        "/console/connections/events/sync", data={**ok, "full": "\u00b2" * 1000, "x": "1"}
    )
    assert r.status_code == 303


# --- ids and query values -----------------------------------------------------------------------


async def test_hostile_ids_and_query_values_are_pages_not_errors(
    client: httpx.AsyncClient,
) -> None:
    await login(client)
    huge = "99999999999999999999"
    cases: list[tuple[str, dict[str, str] | None, int]] = [
        ("/console/jobs/-1", None, 422),
        (f"/console/jobs/{huge}", None, 422),
        ("/console/jobs/\u00b2", None, 422),
        ("/console/jobs/1.5", None, 422),
        ("/console/jobs/999999", None, 404),
        ("/console/users", {"page": huge}, 422),
        ("/console/users", {"page": "-1"}, 422),
        ("/console/users", {"page": "\u00b2"}, 422),
        ("/console/users", {"q": "x" * 10_000, "state": "\u00b2"}, 200),
        ("/console/users/" + "x" * 5000, None, 404),
        ("/console/users/\u00b2\u00b3", None, 404),
        ("/console/tasks", {"windows": huge}, 422),
        ("/console/tasks", {"window": huge + "d"}, 200),
        ("/console/tasks", {"window": "9" * 5000 + "s"}, 200),
        ("/console/tasks", {"window": "\u00b2s"}, 200),
        ("/console/tasks", {"user": "x" * 10_000, "q": "\u00b2" * 1000}, 200),
        ("/console/connections/events", {"queued": huge}, 422),
        ("/console/connections/events", {"queued": "12345"}, 200),  # no such job: no notice
        ("/console/connections/events", {"queued": "9" * 5000}, 422),
        ("/console/connections", {"page": huge}, 422),
        ("/console/connections", {"page": "0"}, 422),
        ("/console/connections", {"status": "\u00b2", "integration": "x" * 5000}, 200),
        ("/console/connections", {"q": "\u00b2" * 10_000}, 200),
        ("/console/connections/" + "x" * 5000, None, 404),
        ("/console/connections/\u00b2\u00b3", None, 404),
        ("/console/connect", {"integration": "\u00b2" * 1000}, 200),
        ("/console/contacts", {"cursor": "\u00b2"}, 200),
        ("/console/contacts", {"cursor": "9" * 5000}, 200),
        ("/console/contacts", {"cursor": huge}, 200),
        ("/console/contacts", {"connection": "x" * 5000, "deleted": "\u00b2"}, 200),
    ]
    for path, params, code in cases:
        r = await client.get(path, params=params)
        assert r.status_code == code, (path[:60], params and str(params)[:60], r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), path[:60]


@pytest.mark.parametrize(
    "path",
    [
        "/console/users?q=%00",
        "/console/users?state=a%00b",
        "/console/users/u%001",
        "/console/tasks?user=%00&q=%00",
        "/console/contacts?q=%00&connection=%00",
        "/console/connections?q=%00&integration=%00",
        "/console/connections/ev%00ents",
    ],
)
async def test_a_nul_character_is_a_400_on_every_database(
    client: httpx.AsyncClient, path: str
) -> None:
    # PostgreSQL refuses NUL in text: it must never reach a query.
    await login(client)
    r = await client.get(path)
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("text/html") and "NUL character" in r.text


@pytest.mark.parametrize(
    "host", ["[", "[::1", "a:b:c", "h:99999999999999999999", b"\xe9", "x" * 5000, ""]
)
async def test_a_malformed_host_header_is_no_crash(
    client: httpx.AsyncClient, host: str | bytes
) -> None:
    # With API keys any Host is served: the pages build URLs from it (cookies, same-origin
    # checks, the error page's way back) and must not choke on it.
    headers: dict[str, Any] = {"Host": host}
    r = await client.post(
        "/console/login", data={"api_key": API_KEY}, headers={**headers, "Origin": "http://hub"}
    )
    assert r.status_code == 403  # the Origin is not this (malformed) host
    r = await client.post("/console/login", data={"api_key": API_KEY}, headers=headers)
    assert r.status_code == 303
    r = await client.get("/console/jobs", headers=headers)
    assert r.status_code == 200
    r = await client.get(
        "/console/static/nope.css", headers={**headers, "Referer": "http://hub/console/jobs"}
    )
    assert r.status_code == 404 and 'href="/console"' in r.text
