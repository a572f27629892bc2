"""The console's connections over HTTP: the catalog's connections listed and filtered, one
connection's own runs, jobs and deliveries, connect links and re-authorisation links (completed
against the HubSpot simulator), CSRF and escaping."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from switchboard.config import HubConfig
from switchboard.connections import connect
from switchboard.connections.store import bump
from switchboard.connectors.hubspot.simulator import CLIENT_ID, CLIENT_SECRET, HubSpotSimulator
from switchboard.console import endpoints as console_endpoints
from switchboard.db import Database, utcnow
from switchboard.jobs import enqueue
from switchboard.models import ConnectionRow, ConnectSession, Credential, Job, SyncRun
from tests.console.helpers import csrf_of, csrf_token, login

HOSTILE = '<script>alert("pwned")</script>'
ESCAPED = "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;"
TOKEN = {"type": "token", "token": "pat-secret-123"}
LINK = re.compile(r'id="connect-url" class="mono" readonly value="(http://hub/connect/[^"]+)"')


@pytest.fixture
def hubspot() -> HubSpotSimulator:
    return HubSpotSimulator(contacts=1, auto_approve=True)


@pytest.fixture
def hubspot_url(hubspot: HubSpotSimulator, asgi_server: Callable[[Any], str]) -> str:
    return asgi_server(hubspot.app)


@pytest.fixture
def hub_config(hubspot_url: str) -> HubConfig:
    return HubConfig.model_validate(
        {
            "integrations": {
                "hs": {
                    "provider": "hubspot",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "base_url": hubspot_url,
                    "authorize_url": hubspot_url + "/oauth/authorize",
                },
                "bare": {"provider": "hubspot", "client_id": "x"},  # no secret: no links
            },
            "connections": {
                "todo": {"kind": "todo_webhooks"},
                "todo2": {"kind": "todo_webhooks"},
            },
        }
    )


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The end user's browser on the provider's consent page (real HTTP)."""
    async with httpx.AsyncClient() as c:
        yield c


async def create(client: httpx.AsyncClient, name: str, **extra: Any) -> str:
    body = {"integration": "hs", "name": name, "auth": TOKEN, **extra}
    r = await client.post("/connections", json=body)
    assert r.status_code == 201, r.text
    connection_id: str = r.json()["id"]
    return connection_id


async def run(db: Database, connection: str, outcome: str, error: str | None = None) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        session.add(
            SyncRun(
                connection=connection,
                stream="contacts",
                started_at=now,
                finished_at=now,
                outcome=outcome,
                upserted=7,
                errors=1 if error else 0,
                detail={"error": error} if error else {},
            )
        )


async def job(db: Database, connection: str, state: str, error: str | None = None) -> int:
    async with db.session() as session:
        job_id = await enqueue(session, "syncs.run", {"connection": connection, "full": True})
        row = await session.get(Job, job_id)
        assert row is not None
        row.state, row.last_error = state, error
    return job_id


def rows(page: str) -> dict[str, str]:
    """The list's rows by connection id: ``data-status`` of each."""
    return dict(re.findall(r'data-connection="([^"]+)" data-status="([^"]+)"', page))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_the_list_shows_api_connections_with_status_and_filters(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = await create(
        client,
        "acme",
        end_user={"id": "u-1", "email": "ops@acme.test", "organisation": HOSTILE},
        tags=["eu", HOSTILE],
    )
    beta = await create(client, "beta")
    gamma = await create(client, "gamma")
    delta = await create(client, "delta")
    async with db.session() as session:
        session.add(
            Credential(
                connection=gamma,
                kind="oauth2",
                config_fingerprint="old",
                refresh_token="x",
                needs_reauth=True,
                reauth_reason="invalid_grant: refresh token revoked",
                updated_at=utcnow(),
            )
        )
        await session.execute(
            update(ConnectionRow)
            .where(ConnectionRow.id == delta)
            .values(status="error", status_reason="portal deleted " + HOSTILE)
        )
        await bump(session)
    r = await client.patch(f"/connections/{beta}", json={"status": "paused"})  # reloads
    assert r.status_code == 200, r.text
    await run(db, acme, "failed", "HubSpot answered 503 " + HOSTILE)
    await run(db, acme, "succeeded")

    await login(client)
    page = (await client.get("/console/connections")).text
    assert rows(page) == {
        acme: "ok",
        beta: "paused",
        delta: "error",
        gamma: "needs_reauth",
        "todo": "ok",
        "todo2": "ok",
    }
    assert f'href="/console/connections/{acme}">acme</a>' in page
    row = page[page.index(f'id="connection-{acme}"') :].split("</tr>")[0]
    assert "hubspot · hs" in row and "u-1" in row and "ops@acme.test" in row
    assert '<span class="pill">eu</span>' in row
    assert "succeeded" in row and "HubSpot answered 503" in row  # last sync, last error
    assert "invalid_grant: refresh token revoked" in page and "paused through the API" in page
    assert "portal deleted" in page
    assert HOSTILE not in page and ESCAPED in page
    assert "paused: 1" in page and "needs_reauth: 1" in page and "error: 1" in page

    async def listed(**params: str) -> set[str]:
        r = await client.get("/console/connections", params=params)
        assert r.status_code == 200
        return set(rows(r.text))

    assert await listed(status="paused") == {beta}
    assert await listed(status="needs_reauth") == {gamma}
    assert await listed(integration="hs") == {acme, beta, gamma, delta}
    assert await listed(integration="hs", status="ok") == {acme}
    assert await listed(q="ACME.test") == {acme}  # the end user's email, any case
    assert await listed(status="nothing") == set()

    # Pages of a smaller size, in alias order, with the filters carried along.
    monkeypatch.setattr(console_endpoints, "CONNECTIONS_PAGE", 2)
    first = (await client.get("/console/connections", params={"integration": "hs"})).text
    assert list(rows(first)) == [acme, beta] and "4 matches, showing 1\u20132" in first
    assert "status=&amp;integration=hs&amp;q=&amp;page=2" in first and "previous" not in first
    second = await client.get("/console/connections", params={"integration": "hs", "page": 2})
    assert list(rows(second.text)) == [delta, gamma] and "next →" not in second.text
    past = await client.get("/console/connections", params={"page": 9})
    assert rows(past.text) == {} and "No connections." in past.text


async def test_a_connection_page_shows_its_own_runs_jobs_and_deliveries(
    client: httpx.AsyncClient, db: Database
) -> None:
    mine = await create(client, "mine", tags=["eu"])
    other = await create(client, "other")
    await run(db, mine, "failed", "mine-run-error")
    await run(db, other, "failed", "other-run-error")
    dead = await job(db, mine, "dead", "mine-dead-" + HOSTILE)
    done = await job(db, mine, "succeeded")
    theirs = await job(db, other, "dead", "other-dead-error")
    now = datetime.now(UTC).isoformat()
    for name, task in (("todo", "mine-task"), ("todo2", "other-task")):
        body = {
            "event": "created",
            "timestamp": now,
            "metadata": {"userId": "u1", "id": task, "content": HOSTILE, "isCompleted": False},
        }
        r = await client.post(f"/webhooks/{name}", json=body, headers={"X-API-Key": ""})
        assert r.status_code == 202, r.text

    await login(client)
    token = await csrf_token(client, f"/console/connections/{mine}")
    r = await client.post(f"/console/connections/{mine}/sync", data={"csrf": token})
    assert r.status_code == 303
    pending = int(query(r.headers["location"])["queued"])
    assert r.headers["location"] == f"/console/connections/{mine}?queued={pending}"

    page = (await client.get(r.headers["location"])).text
    assert "Sync of mine queued as job" in page
    assert "mine-run-error" in page and "other-run-error" not in page
    assert f'id="job-{dead}"' in page and f'id="job-{pending}"' in page
    assert f'id="job-{done}"' not in page  # succeeded jobs are history, not the queue
    assert f'id="job-{theirs}"' not in page and "other-dead-error" not in page
    assert "pat-secret-123" not in page and '"token": "**********"' in page  # masked settings
    assert HOSTILE not in page and ESCAPED in page
    assert 'data-status="ok"' in page and "Re-authorise" in page  # an OAuth integration
    elsewhere = await client.get(f"/console/connections/{other}", params={"queued": pending})
    assert "queued as job" not in elsewhere.text  # not that connection's job
    r = await client.patch(f"/connections/{other}", json={"status": "paused"})
    assert r.status_code == 200
    r = await client.post(f"/console/connections/{other}/sync", data={"csrf": token})
    assert r.status_code == 409 and "paused" in r.text
    by_alias = await client.get("/console/connections/mine")
    assert by_alias.status_code == 200 and f'id="connection-{mine}"' in by_alias.text

    todo = (await client.get("/console/connections/todo")).text
    assert "mine-task" in todo and "other-task" not in todo
    assert HOSTILE not in todo and "&lt;script&gt;alert(" in todo  # JSON-quoted in the body
    assert "Re-authorise" not in todo and "Sync now" not in todo  # no integration, no sync
    todo2 = (await client.get("/console/connections/todo2")).text
    assert "other-task" in todo2 and "mine-task" not in todo2
    missing = await client.get("/console/connections/nope")
    assert missing.status_code == 404 and "No connection named" in missing.text


async def test_a_connect_link_from_the_form_is_a_working_single_use_link(
    client: httpx.AsyncClient, db: Database, hubspot_url: str
) -> None:
    await login(client)
    form = await client.get("/console/connect")
    assert form.status_code == 200
    assert '<option value="hs"' in form.text and '<option value="bare"' not in form.text
    fields = {
        "csrf": csrf_of(form),
        "integration": "hs",
        "end_user_id": "u-7",
        "end_user_email": "u7@example.com",
        "organisation": HOSTILE,
        "tags": "beta, eu ,,",
        "return_url": "https://product.example/done",
    }
    r = await client.post("/console/connect", data=fields)
    assert r.status_code == 200, r.text
    assert "u7@example.com" in r.text and HOSTILE not in r.text and ESCAPED in r.text
    found = LINK.search(r.text)
    assert found is not None, r.text
    url = found.group(1)
    async with db.read_session() as session:
        [row] = (await session.scalars(select(ConnectSession))).all()
    assert row.token_hash == connect.digest(url.rsplit("/", 1)[1])
    assert (row.integration, row.connection) == ("hs", None)
    assert (row.end_user_id, row.end_user_email, row.end_user_organisation) == (
        "u-7",
        "u7@example.com",
        HOSTILE,
    )
    assert row.tags == ["beta", "eu"] and row.return_url == "https://product.example/done"

    # The link works: on to the provider's consent page, once.
    opened = await client.get(url)
    assert opened.status_code == 302
    assert opened.headers["location"].startswith(hubspot_url + "/oauth/authorize?")
    assert query(opened.headers["location"])["client_id"] == CLIENT_ID
    assert (await client.get(url)).status_code == 410

    # Refusals are the form again, with the reason and the values typed (escaped).
    for change, reason in (
        ({"integration": "bare"}, "has no client_secret"),
        ({"integration": "nope"}, "No integration named"),
        ({"return_url": "javascript:alert(1)"}, "an absolute http(s) URL"),
        ({"end_user_email": "x" * 400}, "at most 320 characters"),
        ({"tags": "t" * 101}, "at most 100 characters"),
    ):
        r = await client.post("/console/connect", data={**fields, **change})
        assert r.status_code == 422, change
        assert reason in r.text and 'role="alert"' in r.text, (change, r.text[:2000])
        assert HOSTILE not in r.text and ESCAPED in r.text
    # Without the session's token, or from another site: refused, nothing stored.
    for data, headers in (
        ({k: v for k, v in fields.items() if k != "csrf"}, {}),
        (fields, {"Origin": "https://evil.example"}),
    ):
        r = await client.post("/console/connect", data=data, headers=headers)
        assert r.status_code == 403
    async with db.read_session() as session:
        assert len((await session.scalars(select(ConnectSession))).all()) == 1


async def test_a_reauthorisation_link_renews_that_connection(
    client: httpx.AsyncClient, db: Database, browser: httpx.AsyncClient
) -> None:
    cid = await create(
        client,
        "acme",
        end_user={"id": "u-9", "email": "u9@acme.test", "organisation": "Acme"},
        tags=["eu"],
    )
    async with db.session() as session:
        session.add(
            Credential(
                connection=cid,
                kind="oauth2",
                config_fingerprint="old",
                refresh_token="x",
                needs_reauth=True,
                reauth_reason="invalid_grant",
                updated_at=utcnow(),
            )
        )
    await login(client)
    page = await client.get(f"/console/connections/{cid}")
    assert 'data-status="needs_reauth"' in page.text and "invalid_grant" in page.text
    action = f"/console/connections/{cid}/reauthorise"
    assert f'action="{action}"' in page.text
    assert (await client.post(action, data={})).status_code == 403  # no token
    r = await client.post(action, data={"csrf": csrf_of(page)})
    assert r.status_code == 200, r.text
    assert "Re-authorisation link for acme" in r.text and "u9@acme.test" in r.text
    found = LINK.search(r.text)
    assert found is not None
    async with db.read_session() as session:
        [row] = (await session.scalars(select(ConnectSession))).all()
    assert row.connection == cid and row.integration == "hs"
    assert (row.end_user_id, row.end_user_email, row.tags) == ("u-9", "u9@acme.test", ["eu"])

    # The end user completes it: this connection gets the new credentials, no other is made.
    authorize = (await client.get(found.group(1))).headers["location"]
    callback = (await browser.get(authorize)).headers["location"]
    done = await client.get(callback)
    assert done.status_code == 200 and "Connection acme is re-authorised" in done.text
    items = (await client.get("/connections")).json()["items"]
    assert [i["id"] for i in items if i["integration"] == "hs"] == [cid]
    one = (await client.get(f"/connections/{cid}")).json()
    assert one["auth"] == "oauth2" and one["status"] == "ok" and one["account"] == "62515"
    after = (await client.get(f"/console/connections/{cid}")).text
    assert 'data-status="ok"' in after

    # A connection of no integration has no link to make.
    todo = await client.get("/console/connections/todo")
    assert "/reauthorise" not in todo.text
    r = await client.post("/console/connections/todo/reauthorise", data={"csrf": csrf_of(page)})
    assert r.status_code == 422 and "belongs to no integration" in r.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"organisation": "a\x00b"}, "NUL character"),
        ({"return_url": "http://["}, "an absolute http(s) URL"),
        ({"return_url": "https://" + "x" * 2000}, "at most 2000 characters"),
        ({"end_user_id": "x" * 201}, "at most 200 characters"),
        ({"tags": ",".join(f"t{i}" for i in range(51))}, "at most 50 items"),
        ({"integration": "\u00b2" * 101}, "at most 100 characters"),
    ],
)
async def test_hostile_connect_form_values_are_a_form_again(
    client: httpx.AsyncClient, db: Database, change: dict[str, str], reason: str
) -> None:
    await login(client)
    token = await csrf_token(client, "/console/connect")
    fields = {"csrf": token, "integration": "hs", "end_user_id": "u-1", **change}
    r = await client.post("/console/connect", data=fields)
    assert r.status_code == 422 and reason in r.text, r.text[-3000:]
    assert 'name="integration"' in r.text  # the form, to correct
    async with db.read_session() as session:
        assert (await session.scalars(select(ConnectSession))).all() == []
