"""Hostile input: no request gets a 5xx, and what anyone can send cannot fill the disk.

Two halves. The named cases of issue 18 (each the request that found a 500), asserting the
exact 4xx; then every operation of ``/openapi.json`` (the console excepted: it has its own
tests) sent each class of hostile value in each parameter, header and body, asserting a 4xx (or
a 2xx where the value is merely unusual) with the JSON error envelope, never a 5xx.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from switchboard.app import create_app
from switchboard.config import Config, HubConfig, Settings
from switchboard.connectors.hubspot.simulator import sign_v3
from switchboard.connectors.mapped_crm.simulators.acme import sign as acme_sign
from switchboard.db import Database, utcnow
from switchboard.models import Schedule, WebhookDelivery
from switchboard.webhooks import service as deliveries
from tests.support import API_KEY, Backend, eventually, make_settings

TODO_SECRET = "whsec_" + base64.b64encode(b"hostile-todo-secret-0123").decode()
CRM_SECRET = "hostile-crm-secret"
NOWHERE = "http://127.0.0.1:9"  # nothing listens: no test here may reach a provider


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    return make_settings(
        backend,
        tmp_path,
        api_keys=[API_KEY],
        http_max_attempts=1,
        http_request_max_wait=0.5,
        webhook_rejected_rate="5/60s",
        webhook_rejected_connection_rate="8/60s",
    )


@pytest.fixture
def hub_config() -> HubConfig:
    auth = {"type": "token", "token": "t"}
    return HubConfig.model_validate(
        {
            "connections": {
                "todo": {"kind": "todo_webhooks", "secret": TODO_SECRET},
                "open": {"kind": "todo_webhooks"},
                "hubspot": {
                    "kind": "hubspot",
                    "base_url": NOWHERE,
                    "auth": auth,
                    "webhook_secret": CRM_SECRET,
                },
                "acme": {
                    "kind": "mapped_crm",
                    "base_url": NOWHERE,
                    "auth": auth,
                    "paths": {"list": "/l", "item": "/i/{id}", "create": "/c"},
                    "fields": {"email": "e"},
                    "webhook_secret": CRM_SECRET,
                },
                "events": {"kind": "xml_feed", "url": NOWHERE + "/feed"},
            }
        }
    )


def todo_signed(body: bytes, msg_id: str = "msg_1") -> dict[str, str]:
    """Standard Webhooks headers, made by the standard's own library."""
    at = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(TODO_SECRET).sign(msg_id, at, body),
    }


def hubspot_signed(body: bytes, path: str = "/webhooks/hubspot") -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    return {
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": sign_v3(CRM_SECRET, "POST", "http://hub" + path, body, ts),
    }


def task_event(ts: str = "2025-04-01T14:23:45Z", task: str = "t1", **md: Any) -> bytes:
    metadata = {"userId": "u1", "id": task, "content": "c", "isCompleted": False, **md}
    return json.dumps({"event": "created", "timestamp": ts, "metadata": metadata}).encode()


def assert_error(r: httpx.Response, *statuses: int) -> Any:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert "detail" in body, body
    return body["detail"]


# --- the named cases --------------------------------------------------------------------------

HEADER_INTEGERS = ["\u00b2", "\u0663", "9" * 5000, "-1", "1e3", " ", "0x10"]


@pytest.mark.parametrize("timestamp", HEADER_INTEGERS)
async def test_hubspot_timestamps_that_are_not_ascii_integers_are_401(
    client: httpx.AsyncClient, timestamp: str
) -> None:
    headers = {
        "X-HubSpot-Request-Timestamp": timestamp.encode(),
        "X-HubSpot-Signature-v3": b"abc",
    }
    r = await client.post("/webhooks/hubspot", content=b"[]", headers=headers)
    assert assert_error(r, 401) == "Missing X-HubSpot-Signature-v3 or timestamp"


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/webhooks/hubspot", "X-HubSpot-Signature-v3"),
        ("/webhooks/acme", "X-Acme-Signature"),
        ("/webhooks/todo", "webhook-signature"),
    ],
)
@pytest.mark.parametrize("signature", ["\u00e9", "sha256=\u00ff\u00fe", "v1,\u00e9" * 1000])
async def test_non_ascii_signatures_are_401(
    client: httpx.AsyncClient, path: str, header: str, signature: str
) -> None:
    body = b'{"id": "1", "payload": {"id": "1"}}'
    headers = todo_signed(body) | hubspot_signed(body, path)
    headers[header] = signature.encode("latin-1")
    r = await client.post(path, content=body, headers=headers)
    assert_error(r, 401)


MALFORMED_BODIES = {
    "empty": b"",
    "truncated": b'{"event": "created", "timestamp": "2025-',
    "not-utf8": b'{"event": "\xff\xfe"}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "deep-object": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "huge-int": b'{"event": ' + b"9" * 5000 + b"}",
    "nan": b'{"event": NaN}',
    "nul": b'{"event": "created\\u0000"}',
    "lone-surrogate": b'{"event": "\\ud800"}',
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
async def test_signed_malformed_todo_deliveries_are_422(
    client: httpx.AsyncClient, body: bytes
) -> None:
    r = await client.post("/webhooks/todo", content=body, headers=todo_signed(body))
    [error] = assert_error(r, 422)
    assert error["loc"] == ["body"] and error["type"] == "json_invalid"


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
@pytest.mark.parametrize("path", ["/webhooks/hubspot", "/webhooks/acme"])
async def test_signed_malformed_crm_deliveries_are_400(
    client: httpx.AsyncClient, path: str, body: bytes
) -> None:
    headers = hubspot_signed(body, path) | {"X-Acme-Signature": acme_sign(CRM_SECRET, body)}
    r = await client.post(path, content=body, headers=headers)
    assert assert_error(r, 400).startswith("Body must be")


@pytest.mark.parametrize(
    "event",
    [
        [{"objectId": 1, "occurredAt": 10**30}],
        [{"objectId": 1, "occurredAt": True}],
        [{"objectId": {"nested": 1}, "occurredAt": 1}],
        [{"objectId": "9" * 300, "occurredAt": 1}],
    ],
)
async def test_hubspot_events_with_impossible_values_are_400(
    client: httpx.AsyncClient, event: Any
) -> None:
    body = json.dumps(event).encode()
    r = await client.post("/webhooks/hubspot", content=body, headers=hubspot_signed(body))
    assert_error(r, 400)


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
async def test_task_timestamps_at_the_calendars_edge_are_422(
    client: httpx.AsyncClient, ts: str
) -> None:
    body = task_event(ts)
    r = await client.post("/webhooks/todo", content=body, headers=todo_signed(body))
    [error] = assert_error(r, 422)
    assert error["loc"] == ["body", "timestamp"]


async def test_overlong_sender_ids_are_deduplicated_not_crashed(
    client: httpx.AsyncClient, db: Database
) -> None:
    """``webhook-id`` and HubSpot's event fields are the sender's: any length fits the log."""
    body = task_event(task="long")
    msg_id = "m" * 300
    for _ in range(2):  # the second is an exact redelivery: acknowledged, no second effect
        r = await client.post("/webhooks/todo", content=body, headers=todo_signed(body, msg_id))
        assert r.status_code == 202, r.text
    events = json.dumps([{"objectId": 7, "occurredAt": 1, "subscriptionId": "s" * 300}])
    for _ in range(2):
        r = await client.post(
            "/webhooks/hubspot", content=events, headers=hubspot_signed(events.encode())
        )
        assert r.status_code == 200, r.text
    async with db.read_session() as session:
        outcomes = (
            await session.scalars(select(WebhookDelivery.outcome).order_by(WebhookDelivery.id))
        ).all()
    assert outcomes == ["created", "redelivery", "accepted", "duplicate"]


CURSOR_AND_ID_CASES = [
    ("/tasks?cursor=%C2%B2", 422, ["query", "cursor"]),
    ("/tasks?cursor=99999999999999999999999", 422, ["query", "cursor"]),
    ("/tasks?cursor=9223372036854775808", 422, ["query", "cursor"]),
    ("/tasks?cursor=-1", 422, ["query", "cursor"]),
    ("/admin/jobs?cursor=%C2%B2", 422, ["query", "cursor"]),
    ("/admin/jobs?cursor=99999999999999999999999", 422, ["query", "cursor"]),
    ("/contacts?cursor=%C2%B2", 400, None),  # contacts (and the console) keep their 400
    ("/connections/events/runs?before=99999999999999999999999", 422, ["query", "before"]),
    ("/connections/events/runs?before=9223372036854775808", 422, ["query", "before"]),
    ("/contacts?updated_since=9999-12-31T23:59:59-23:59", 422, ["query", "updated_since"]),
    ("/contacts?updated_since=0001-01-01T00:00:00%2B23:59", 422, ["query", "updated_since"]),
    (
        "/reports/tasks?userId=u&start=0001-01-01T00:00:00%2B23:59&end=2025-01-01T00:00:00Z",
        422,
        ["query", "start"],
    ),
    (
        "/reports/tasks?userId=u&start=2025-01-01T00:00:00Z&end=9999-12-31T23:59:59-23:59",
        422,
        ["query", "end"],
    ),
    ("/admin/jobs/-1", 404, None),
    ("/admin/jobs/0", 404, None),
    ("/admin/jobs/99999999999999999999999", 404, None),
    ("/admin/jobs/9223372036854775808", 404, None),
]


@pytest.mark.parametrize(("path", "status", "loc"), CURSOR_AND_ID_CASES)
async def test_cursors_ids_and_dates_out_of_range_are_4xx(
    client: httpx.AsyncClient, path: str, status: int, loc: list[str] | None
) -> None:
    detail = assert_error(await client.get(path), status)
    if loc is not None:
        assert [item["loc"] for item in detail] == [loc]


@pytest.mark.parametrize("job_id", ["-1", "99999999999999999999999"])
async def test_retrying_a_job_that_cannot_exist_is_404(
    client: httpx.AsyncClient, job_id: str
) -> None:
    assert_error(await client.post(f"/admin/jobs/{job_id}/retry"), 404)


async def test_a_valid_cursor_still_pages(client: httpx.AsyncClient, db: Database) -> None:
    for n in range(3):
        body = task_event(task=f"p{n}")
        r = await client.post("/webhooks/open", content=body)
        assert r.status_code == 202
    first = (await client.get("/tasks", params={"limit": 2})).json()
    rest = (await client.get("/tasks", params={"cursor": first["next_cursor"]})).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == ["p0", "p1", "p2"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users?cursor=%00", None),
        ("GET", "/tasks/a%00b", None),
        ("GET", "/contacts?email=a%00b", None),
        ("PATCH", "/users/u1", {"email": "a@example.com", "firstName": "a\u0000b"}),
    ],
)
async def test_nul_in_text_is_never_a_500(
    client: httpx.AsyncClient, backend: Backend, method: str, path: str, body: Any
) -> None:
    """PostgreSQL text cannot hold NUL; SQLite can, so there the request is simply served."""
    r = await client.request(method, path, json=body)
    if backend.name == "postgresql":
        [error] = assert_error(r, 422)
        assert error["type"] == "string_nul"
    else:
        assert r.status_code in (200, 404), r.text


# --- bounded storage of rejected deliveries ---------------------------------------------------


async def _log(db: Database) -> tuple[int, int]:
    async with db.read_session() as session:
        count, stored = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(func.length(WebhookDelivery.body)), 0))
            )
        ).one()
    return int(count), int(stored)


def _client_from(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://hub")


async def test_a_flood_of_unsigned_posts_is_answered_but_its_log_is_bounded(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    """Settings: 5 rejected writes a minute per source, 8 per connection; 1 KiB of body each."""
    big = b"x" * 500_000
    for _ in range(40):
        r = await client.post("/webhooks/todo", content=big)
        assert_error(r, 401)
    count, stored = await _log(db)
    assert count == 5 and stored <= 5 * 1024
    # Another source has its own bucket, within the connection's.
    async with _client_from(app, "10.0.0.2") as other:
        for _ in range(10):
            assert_error(await other.post("/webhooks/todo", content=big), 401)
    assert (await _log(db))[0] == 8
    # Unsigned connections: malformed and refused deliveries are bounded the same way.
    for _ in range(20):
        assert_error(await client.post("/webhooks/open", content=b"{" + big), 422)
    async with db.read_session() as session:
        rows = (
            await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.connection == "open")
            )
        ).all()
    assert len(rows) == 5
    assert all(len(r.body) == 1024 and r.body_bytes == len(big) + 1 for r in rows)
    assert all(r.client == "127.0.0.1" and r.outcome == "invalid" for r in rows)


async def test_accepted_deliveries_keep_their_whole_body(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = task_event(task="whole", content="y" * 5000)
    assert (await client.post("/webhooks/open", content=body)).status_code == 202
    async with db.read_session() as session:
        [row] = (await session.scalars(select(WebhookDelivery))).all()
    assert row.body.encode() == body and row.stored_bytes >= len(body)


async def test_pruning_removes_old_and_excess_rows_and_keeps_recent_ones(db: Database) -> None:
    now = utcnow()

    def row(age: timedelta, status: int, size: int) -> dict[str, Any]:
        values = deliveries.delivery_row(
            connection="c", body=b"b" * size, status_code=status, outcome="o"
        )
        return values | {"received_at": now - age}

    async with db.session() as session:
        await deliveries.record(
            session,
            [
                row(timedelta(days=40), 202, 100),  # past retention
                row(timedelta(days=2), 401, 300),  # rejected: the first to go for size
                row(timedelta(days=2), 202, 300),
                row(timedelta(days=1), 401, 300),
                row(timedelta(hours=1), 202, 300),
            ],
        )
    async with db.session() as session:
        pruned = await deliveries.prune(session, older_than=now - timedelta(days=30), max_bytes=700)
    assert (pruned.by_age, pruned.by_size) == (1, 2)
    async with db.read_session() as session:
        left = (
            await session.execute(
                select(WebhookDelivery.status_code, WebhookDelivery.received_at).order_by(
                    WebhookDelivery.id
                )
            )
        ).all()
    assert [status for status, _ in left] == [202, 202]
    async with db.session() as session:  # within both bounds: nothing goes
        assert await deliveries.prune(
            session, older_than=now - timedelta(days=30), max_bytes=700
        ) == deliveries.Pruned(0, 0)
    async with db.session() as session:  # the size bound reaches applied rows last
        pruned = await deliveries.prune(session, older_than=now - timedelta(days=30), max_bytes=300)
    assert pruned.by_size == 1 and (await _log(db))[0] == 1


async def test_pruning_runs_on_the_schedule(
    config: Config, db: Database, settings: Settings
) -> None:
    """The runtime fires ``webhooks.prune``; an old delivery goes, a recent one stays."""
    async with db.session() as session:
        await deliveries.record(
            session,
            [
                deliveries.delivery_row(connection="c", body=b"old", status_code=202, outcome="o")
                | {"received_at": utcnow() - timedelta(days=31)},
                deliveries.delivery_row(connection="c", body=b"new", status_code=202, outcome="o"),
            ],
        )
    app = create_app(config, runtime=True)
    async with app.router.lifespan_context(app):

        async def scheduled() -> bool:
            async with db.session() as session:
                # Its first slot is the next minute: bring it forward rather than wait.
                moved = await session.execute(
                    update(Schedule)
                    .where(Schedule.name == "webhooks.prune")
                    .values(next_run_at=utcnow() - timedelta(seconds=1))
                )
            return bool(moved.rowcount)  # type: ignore[attr-defined]

        await eventually(scheduled)

        async def pruned() -> bool:
            async with db.read_session() as session:
                bodies = (await session.scalars(select(WebhookDelivery.body))).all()
            return list(bodies) == ["new"]

        await eventually(pruned, timeout=15)


# --- every operation, every hostile class -----------------------------------------------------

HOSTILE_VALUES = {
    "non-ascii-digit": "\u00b2",
    "arabic-digit": "\u0663\u0663",
    "huge-number": "9" * 5000,
    "int64+1": "9223372036854775808",
    "negative": "-1",
    "calendar-max": "9999-12-31T23:59:59-23:59",
    "calendar-min": "0001-01-01T00:00:00+23:59",
    "overlong": "x" * 20_000,
    "percent-junk": "%ZZ%C2",
    "control": "a\tb\r",
    "emoji": "\U0001f600",
    "nul": "a\x00b",
}
HOSTILE_BODIES = {**MALFORMED_BODIES, "array": b"[1, 2]", "string": b'"x"', "null": b"null"}
# Plausible values for the parameters a test does not attack.
VALID_PATH = {"connection": "open", "name": "events", "job_id": "1"}
SKIP = ("/console", "/docs", "/redoc", "/openapi.json")


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    # Building the app reads and writes nothing: the lifespan (database) does not run here.
    backend = Backend("sqlite+aiosqlite:///:memory:", None)
    config = Config(make_settings(backend, Path(tempfile.gettempdir())), HubConfig(), None)
    spec = create_app(config, runtime=False).openapi()
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        if not path.startswith(SKIP)
        for method, op in ops.items()
    ]


OPERATIONS = _operations()


def _requests(path: str, op: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(what, url, httpx kwargs)`` for each hostile value in each place of one operation."""
    params = op.get("parameters", [])
    base_path = {p["name"]: VALID_PATH.get(p["name"], "x") for p in params if p["in"] == "path"}
    out = []
    for name, value in HOSTILE_VALUES.items():
        for p in params:
            if p["in"] == "path":
                url = path.format(**(base_path | {p["name"]: quote(value, safe="")}))
                out.append((f"path {p['name']}={name}", url, {}))
            elif p["in"] == "query":
                out.append(
                    (
                        f"query {p['name']}={name}",
                        path.format(**base_path),
                        {"params": {p["name"]: value}},
                    )
                )
        encoded = value.encode()
        if "\r" in value:  # no HTTP server passes a header with CR on: nothing to test
            continue
        for header in ("X-API-Key", "Authorization", "X-Request-ID"):
            out.append(
                (
                    f"header {header}={name}",
                    path.format(**base_path),
                    {"headers": {header: encoded}},
                )
            )
    if "requestBody" in op or path.startswith("/webhooks/"):
        for name, body in HOSTILE_BODIES.items():
            kwargs = {"content": body, "headers": {"content-type": "application/json"}}
            out.append((f"body {name}", path.format(**base_path), kwargs))
    return out


@pytest.fixture
async def raw_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub", headers={"X-API-Key": API_KEY}
    ) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
async def test_no_hostile_value_gets_a_5xx(
    raw_client: httpx.AsyncClient, method: str, path: str, op: dict[str, Any]
) -> None:
    failures = []
    for what, url, kwargs in _requests(path, op):
        r = await raw_client.request(method, url, **kwargs)
        if r.status_code >= 500:
            failures.append(f"{what}: {r.status_code} {r.text[:120]}")
        elif r.status_code >= 400 and method == "HEAD":  # no body, by definition (RFC 9110 9.3.2)
            if r.content:
                failures.append(f"{what}: {r.status_code} with a body to a HEAD")
        elif r.status_code >= 400:
            body = (
                r.json()
                if r.headers.get("content-type", "").startswith("application/json")
                else None
            )
            # /search answers in the provider's own envelope (FEVER.md), every other route in ours.
            if not isinstance(body, dict) or not (
                {"detail"} & body.keys() or {"error"} & body.keys()
            ):
                failures.append(f"{what}: {r.status_code} without a JSON error: {r.text[:120]}")
    assert not failures, "\n".join(failures)
