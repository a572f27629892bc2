"""The console over HTTP (httpx + ASGI): login, pages, actions, CSRF, escaping, secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from switchboard.config import HubConfig
from switchboard.connectors.crm import CrmContact
from switchboard.contacts import service as contacts_service
from switchboard.db import Database
from switchboard.jobs import enqueue
from switchboard.models import Job, SyncRun
from tests.console.helpers import csrf_of, csrf_token, login
from tests.support import API_KEY

TOKEN = "pat-very-secret-token-123"
FEED_SECRET = "feed-query-secret"
HOSTILE = '<script>alert("pwned")</script>'


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "crm": {
                    "kind": "hubspot",
                    "base_url": "http://user:pw-in-url@127.0.0.1:9",
                    "auth": {"type": "token", "token": TOKEN},
                },
                "events": {
                    "kind": "xml_feed",
                    "url": f"http://127.0.0.1:9/feed?key={FEED_SECRET}",
                    "interval": "1h",
                },
                "todo": {"kind": "todo_webhooks"},
            },
            "users": {"crm_connection": "crm"},
            "reports": {"interval": "1h"},
        }
    )


async def make_dead(db: Database, kind: str = "crm.push", error: str = "400 bad") -> int:
    async with db.session() as session:
        job_id = await enqueue(session, kind, {"user": "u1"}, key="u1")
        job = await session.get(Job, job_id)
        assert job is not None
        job.state, job.attempts, job.last_error = "dead", 3, error
        job.finished_at = datetime.now(UTC)
    return job_id


def todo(kind: str, task: str, ts: datetime, **md: Any) -> dict[str, Any]:
    metadata = {"userId": "u1", "id": task, "content": "Water the plants", "isCompleted": False}
    metadata.update(md)
    return {"event": kind, "timestamp": ts.isoformat(), "metadata": metadata}


async def post_todo(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.post("/webhooks/todo", json=body, headers={"X-API-Key": ""})
    assert r.status_code == 202, r.text


async def jobs_of(db: Database, kind: str) -> list[Job]:
    async with db.read_session() as session:
        return list((await session.scalars(select(Job).where(Job.kind == kind))).all())


# --- login --------------------------------------------------------------------------------------


async def test_pages_need_a_login(client: httpx.AsyncClient) -> None:
    # The client's X-API-Key header is not a console session: only the cookie is.
    for path in ("/console/connections", "/console/jobs", "/console/tasks", "/console/users"):
        r = await client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    assert (await client.get("/console")).headers["location"] == "/console/connections"
    page = await client.get("/console/login")
    assert page.status_code == 200 and 'name="api_key"' in page.text


async def test_bad_key_is_a_401_page_without_a_cookie(client: httpx.AsyncClient) -> None:
    r = await login(client, "wrong-key")
    assert r.status_code == 401
    assert "That API key is not valid." in r.text and "set-cookie" not in r.headers
    assert (await client.get("/console/jobs")).status_code == 303


async def test_good_key_sets_a_strict_httponly_cookie_without_the_key(
    client: httpx.AsyncClient,
) -> None:
    r = await login(client)
    assert r.status_code == 303 and r.headers["location"] == "/console/connections"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("switchboard_console=")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/console" in lowered
    assert API_KEY not in cookie
    assert (await client.get("/console/connections")).status_code == 200
    assert (await client.get("/console/login")).headers["location"] == "/console/connections"


async def test_forged_or_foreign_cookie_is_refused(client: httpx.AsyncClient) -> None:
    await login(client)
    value = client.cookies["switchboard_console"]
    issued, nonce, sig = value.split(".")
    forged = f"{issued}.{nonce}.{'0' * len(sig)}"
    stale = f"{int(issued) - 13 * 3600}.{nonce}.{sig}"  # also no longer matches its signature
    for bad in (forged, stale, "open", f"{issued}.{nonce}.open"):
        client.cookies.clear()
        client.cookies.set("switchboard_console", bad)
        assert (await client.get("/console/jobs")).status_code == 303, bad


async def test_logout_clears_the_session(client: httpx.AsyncClient) -> None:
    await login(client)
    token = await csrf_token(client)
    r = await client.post("/console/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert "switchboard_console" not in client.cookies
    assert (await client.get("/console/jobs")).status_code == 303


# --- pages and actions --------------------------------------------------------------------------


async def test_connections_page_shows_state_runs_and_no_secrets(
    client: httpx.AsyncClient, db: Database
) -> None:
    async with db.session() as session:
        session.add_all(
            [
                SyncRun(
                    connection="events",
                    stream="feed",
                    started_at=datetime.now(UTC) - timedelta(minutes=5),
                    finished_at=datetime.now(UTC) - timedelta(minutes=5),
                    outcome="succeeded",
                    pages=1,
                    upserted=41,
                    deleted=0,
                    skipped=2,
                    errors=0,
                    detail={"skipped_reasons": {"invalid date": 2}, "plans": 43},
                ),
                SyncRun(
                    connection="events",
                    stream="feed",
                    started_at=datetime.now(UTC),
                    finished_at=datetime.now(UTC),
                    outcome="failed",
                    errors=1,
                    detail={"error": "provider answered 503"},
                ),
            ]
        )
    await login(client)
    r = await client.get("/console/connections")
    assert r.status_code == 200
    listing = r.text
    for text in (
        "crm",
        "hubspot",
        "xml_feed",
        "todo_webhooks",
        'href="/console/connections/events"',
    ):
        assert text in listing, text
    row = listing[listing.index('id="connection-events"') :].split("</tr>")[0]
    assert "failed" in row and "provider answered 503" in row  # last sync, last error
    r = await client.get("/console/connections/events")
    assert r.status_code == 200
    page = r.text
    for text in ("xml_feed", "closed", "Sync now"):
        assert text in page, text
    assert "failing" in page and "provider answered 503" in page  # last run failed
    assert ">41<" in page and ">2<" in page  # the run history's counts
    assert "http://127.0.0.1:9/feed" in page
    crm = (await client.get("/console/connections/crm")).text
    assert "token" in crm and "**********" in crm  # the settings, the token masked
    for html in (listing, page, crm):
        for secret in (TOKEN, FEED_SECRET, "pw-in-url", API_KEY):
            assert secret not in html, secret
    assert r.headers["content-security-policy"].startswith("default-src 'none'")

    feed = await client.get("/console/feed")
    assert feed.status_code == 200 and "invalid date" in feed.text and FEED_SECRET not in feed.text


async def test_sync_now_queues_a_sync(client: httpx.AsyncClient, db: Database) -> None:
    await login(client)
    token = await csrf_token(client)
    r = await client.post("/console/connections/events/sync", data={"csrf": token})
    assert r.status_code == 303
    [job] = await jobs_of(db, "syncs.run")
    assert job.payload == {"connection": "events", "full": False} and job.state == "pending"
    assert r.headers["location"] == f"/console/connections/events?queued={job.id}"
    page = await client.get(r.headers["location"])
    assert "Sync of events queued as job" in page.text
    assert f'href="/console/jobs/{job.id}"' in page.text
    # A connection that cannot sync is refused by the sync service.
    r = await client.post("/console/connections/todo/sync", data={"csrf": token})
    assert r.status_code == 400


async def test_cross_site_posts_are_refused(client: httpx.AsyncClient, db: Database) -> None:
    await login(client)
    token = await csrf_token(client)
    dead = await make_dead(db)
    attempts: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"csrf": token}, {"Origin": "https://evil.example"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        ({}, {}),  # no token
        ({"csrf": token[:-1] + ("a" if token[-1] != "a" else "b")}, {}),  # wrong token
    ]
    for form, headers in attempts:
        r = await client.post("/console/connections/events/sync", data=form, headers=headers)
        assert r.status_code == 403, (form, headers)
        r = await client.post(f"/console/jobs/{dead}/replay", data=form, headers=headers)
        assert r.status_code == 403, (form, headers)
    assert await jobs_of(db, "syncs.run") == []
    [job] = await jobs_of(db, "crm.push")
    assert job.state == "dead"
    # Without the (SameSite=Strict) cookie, as a cross-site form would be sent: to the login.
    client.cookies.clear()
    r = await client.post("/console/connections/events/sync", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    # The same origin passes.
    await login(client)
    token = await csrf_token(client)
    r = await client.post(
        "/console/connections/events/sync", data={"csrf": token}, headers={"Origin": "http://hub"}
    )
    assert r.status_code == 303


async def test_jobs_page_and_replay(client: httpx.AsyncClient, db: Database) -> None:
    dead = await make_dead(db, error="HubSpot said 400: " + HOSTILE)
    async with db.session() as session:
        await enqueue(session, "other.kind", {})
    await login(client)
    page = await client.get("/console/jobs")
    assert page.status_code == 200
    assert f'id="job-{dead}"' in page.text and "crm.push · dead" in page.text  # chart legend
    assert "other.kind · pending" in page.text and "<polyline" in page.text
    assert HOSTILE not in page.text and "&lt;script&gt;" in page.text

    r = await client.post(f"/console/jobs/{dead}/replay", data={"csrf": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == f"/console/jobs/{dead}?replayed=1"
    async with db.read_session() as session:
        job = await session.get(Job, dead)
        assert job is not None and job.state == "pending" and job.attempts == 0
    detail = await client.get(r.headers["location"])
    assert "was replayed" in detail.text and 'data-state="pending"' in detail.text
    # Only dead jobs replay: the refusal is a page with the reason and a way back.
    r = await client.post(
        f"/console/jobs/{dead}/replay",
        data={"csrf": csrf_of(page)},
        headers={"Referer": f"http://hub/console/jobs/{dead}"},
    )
    assert r.status_code == 409 and r.headers["content-type"].startswith("text/html")
    assert "409 · Conflict" in r.text and "only dead jobs can be retried" in r.text
    assert f'href="/console/jobs/{dead}"' in r.text
    missing = await client.get("/console/jobs/999999")
    assert missing.status_code == 404 and "404 · Not Found" in missing.text
    assert 'href="/console"' in missing.text  # no console referer: back to the console
    bad_id = await client.get("/console/jobs/not-a-number")
    assert bad_id.status_code == 422 and "not valid" in bad_id.text


async def test_the_job_page_shows_the_batch_a_job_ran_in(
    client: httpx.AsyncClient, db: Database
) -> None:
    async with db.session() as session:
        first = await enqueue(session, "crm.push", {})
        second = await enqueue(session, "crm.push", {})
        alone = await enqueue(session, "crm.push", {})
        await session.execute(update(Job).where(Job.id.in_([first, second])).values(batch=first))
    await login(client)
    page = await client.get(f"/console/jobs/{second}")
    assert f'batch <a href="/console/jobs/{first}">{first}</a>' in page.text
    assert "ran alone" in (await client.get(f"/console/jobs/{alone}")).text
    listed = (await client.get("/admin/jobs", headers={"X-API-Key": API_KEY})).json()["items"]
    assert {j["id"]: j["batch"] for j in listed} == {first: first, second: first, alone: None}


async def test_tasks_chart_counts_windows_and_escapes_content(
    client: httpx.AsyncClient,
) -> None:
    now = datetime.now(UTC)
    boundary = now.replace(minute=0, second=0, microsecond=0)  # the current window's end
    earlier = boundary - timedelta(hours=3, minutes=30)
    await post_todo(client, todo("created", "t1", earlier, content=HOSTILE))
    await post_todo(client, todo("created", "t2", boundary - timedelta(minutes=20)))
    await post_todo(
        client,
        todo("updated", "t1", boundary - timedelta(minutes=10), isCompleted=True, content=HOSTILE),
    )
    await post_todo(client, todo("created", "t3", boundary - timedelta(minutes=5), userId="u2"))
    await login(client)
    r = await client.get("/console/tasks", params={"windows": 4})
    assert r.status_code == 200
    page = r.text
    # The last window (boundary - 1h, boundary]: t1 completed, t2 and t3 new.
    last = boundary.strftime("%H:%M")
    assert f"<title>{last}: 1 completed</title>" in page
    assert f"<title>{last}: 2 new</title>" in page
    # Before: t1 was new in the window it was created in, then old in the two after it.
    previous = (boundary - timedelta(hours=1)).strftime("%H:%M")
    assert f"<title>{previous}: 1 old</title>" in page
    first = (boundary - timedelta(hours=3)).strftime("%H:%M")
    assert f"<title>{first}: 1 new</title>" in page
    assert page.count("<rect x=") == 5  # completed + new, old, old, new
    # Per-user counts and the hostile content, escaped.
    assert HOSTILE not in page and "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    assert "u1" in page and "u2" in page
    # One user's chart.
    r = await client.get("/console/tasks", params={"windows": 2, "user": "u2"})
    assert f"<title>{last}: 1 new</title>" in r.text and "completed</title>" not in r.text
    r = await client.get("/console/tasks", params={"window": "soon"})
    assert r.status_code == 200 and "Not a duration" in r.text
    for extreme in ("0s", "9999999999d"):
        r = await client.get("/console/tasks", params={"window": extreme})
        assert r.status_code == 200, extreme
        assert "between 1s and 366d" in r.text or "Not a duration" in r.text


async def test_webhooks_page_lists_failures_first(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    await post_todo(client, todo("created", "ok-1", now))
    r = await client.post(
        "/webhooks/todo", json=todo("updated", "missing", now), headers={"X-API-Key": ""}
    )
    assert r.status_code == 404
    await post_todo(client, todo("created", "ok-2", now, content=HOSTILE))
    await login(client)
    page = (await client.get("/console/webhooks")).text
    section = page[page.index('id="webhooks-todo"') :]
    assert section.index("Task not found") < section.index("ok-2") < section.index("ok-1")
    assert "failed: 1" in section
    assert 'href="/console/connections/todo"' in section  # to the connection's own page
    assert HOSTILE not in page and "&lt;script&gt;" in page


async def test_users_search_and_history(client: httpx.AsyncClient, db: Database) -> None:
    for user_id, email in (("alice", "alice@example.com"), ("bob", "bob@example.com")):
        r = await client.patch(f"/users/{user_id}", json={"email": email, "firstName": HOSTILE})
        assert r.status_code == 200, r.text
    await login(client)
    page = (await client.get("/console/users", params={"q": "alice"})).text
    assert "alice@example.com" in page and "bob@example.com" not in page
    assert HOSTILE not in page
    page = (await client.get("/console/users", params={"state": "synced"})).text
    assert "alice@example.com" not in page and "No users match." in page

    [job] = [j for j in await jobs_of(db, "users.propagate") if j.key == "user:alice"]
    detail = await client.get("/console/users/alice")
    assert detail.status_code == 200
    assert f'href="/console/jobs/{job.id}"' in detail.text and 'data-state="pending"' in detail.text
    assert (await client.get("/console/users/nobody")).status_code == 404


async def test_contacts_search(client: httpx.AsyncClient, db: Database) -> None:
    now = datetime.now(UTC)

    def contact(external_id: str, email: str, first: str) -> CrmContact:
        fields = {"email": email, "firstName": first, "lastName": "Doe"}
        return CrmContact(external_id, fields, now, now, False, {})

    async with db.session() as session:
        await contacts_service.store(
            session,
            "crm",
            [contact("1", "jane@example.com", "Jane"), contact("2", "x@example.com", HOSTILE)],
        )
    await login(client)
    page = (await client.get("/console/contacts", params={"q": "jane"})).text
    assert "jane@example.com" in page and "x@example.com" not in page
    page = (await client.get("/console/contacts")).text
    assert "x@example.com" in page and HOSTILE not in page and "&lt;script&gt;" in page
    assert "crm: 2 live, 0 deleted" in page
    r = await client.get("/console/contacts", params={"cursor": "not-a-cursor"})
    assert r.status_code == 200 and "No contacts" in r.text


async def test_static_assets(client: httpx.AsyncClient) -> None:
    css = await client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await client.get("/console/static/console.js")).status_code == 200
    assert (await client.get("/console/static/..%2Fendpoints.py")).status_code == 404
    assert (await client.get("/console/static/nope.css")).status_code == 404


class TestOpenConsole:
    """No API key configured: the console is open (loopback only, like the API), but its
    forms still need the session's CSRF token."""

    @pytest.fixture
    def settings(self, backend: Any, tmp_path: Any) -> Any:
        from tests.support import make_settings

        return make_settings(backend, tmp_path, api_keys=[])

    @pytest.fixture
    async def client(self, app: Any) -> AsyncIterator[httpx.AsyncClient]:
        # Open mode answers loopback host names only.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            yield c

    async def test_open_pages_and_csrf(self, client: httpx.AsyncClient, db: Database) -> None:
        r = await client.get("/console/connections")
        assert r.status_code == 200 and "open (no API key)" in r.text
        assert "samesite=strict" in r.headers["set-cookie"].lower()
        assert (await client.get("/console/login")).status_code == 303
        r = await client.post("/console/connections/events/sync", data={"csrf": "guess"})
        assert r.status_code == 403
        token = await csrf_token(client, "/console/connections/events")  # its Sync now form
        r = await client.post("/console/connections/events/sync", data={"csrf": token})
        assert r.status_code == 303
        assert len(await jobs_of(db, "syncs.run")) == 1
