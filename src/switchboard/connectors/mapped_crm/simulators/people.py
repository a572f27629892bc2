"""People CRM simulator: a second REST shape for the declarative connector (cursor pages, nested
records, an API key, timestamped base64 signatures). No Python of the hub knows it: a
connections file describes it (``docs/configuration.md``).

* The API key on every API call, as ``X-Api-Key: <key>``, the ``api_key`` query parameter or
  basic auth's user name (401 JSON otherwise); at most ``rate_limit`` calls per
  ``rate_window`` seconds per key, answered with ``X-Quota-Limit``, ``X-Quota-Remaining`` and
  ``X-Quota-Reset`` (seconds until a call frees up); beyond it 429 with ``Retry-After``.
* ``GET /v2/people?cursor=&limit=`` (limit 1..200, default 50) → ``{"results": {"items":
  [people]}, "paging": {"next_cursor": "…" | null}}``, oldest first, and the same next page as a
  ``Link: <…>; rel="next"`` header. A cursor is opaque (base64 of a position). ``?offset=n``
  instead of a cursor starts at the n-th person.
* A person: ``{"uid": "p_…", "name": {"first", "last"}, "emails": [{"value", "primary"}],
  "org": {"name"}, "modified_at": "<ISO 8601 UTC>"}``. ``POST /v2/people`` → 201;
  ``GET|PATCH|DELETE /v2/people/{uid}`` → 200 | 200 | 204, or 404. ``PATCH`` merges objects key by
  key and replaces lists whole; ``uid`` and ``modified_at`` are the CRM's. Unknown keys → 422.
* Webhooks ``{"type": "person.created|person.updated|person.deleted", "event_id": <uuid>,
  "data": <person>}`` with ``X-People-Timestamp: <epoch seconds>`` and ``X-People-Signature:
  v1=<base64 HMAC-SHA512 of "{timestamp}.{body}">``.

The Python API (:meth:`PeopleSimulator.create` / ``update`` / ``delete``) changes data as a user
of the CRM would: webhooks fire.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from switchboard.sandbox.faults import (
    Faults,
    FaultState,
    Problem,
    RequestLog,
    SandboxMiddleware,
)
from switchboard.sandbox.webhooks import Outbox

API_KEY = "people-sandbox-key"
WEBHOOK_SECRET = "people-sandbox-webhook-secret"  # noqa: S105 - the sandbox's well-known secret
PEOPLE = "/v2/people"
_SHAPE: dict[str, Any] = {"name": {"first", "last"}, "emails": list, "org": {"name"}}

Handler = Callable[[Request], Awaitable[Response]]


def people_error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The ``X-People-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha512).digest()
    return "v1=" + base64.b64encode(digest).decode()


class PeopleSimulator:
    """A cursor-paged CRM of nested person records."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        rate_limit: int = 10_000,
        rate_window: float = 60.0,
        webhook_url: str | None = None,
        webhook_secret: str = WEBHOOK_SECRET,
        faults: Faults | None = None,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.people: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._hits: deque[float] = deque()
        self.outbox = Outbox(max_attempts=5, backoff_base=0.2)
        self.faults = FaultState(faults, seed=seed)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(
            self._build(),
            faults=self.faults,
            log=self.log,
            throttled=lambda: people_error(429, "rate_limited", "Too many requests"),
            unavailable=lambda: people_error(503, "unavailable", "Service unavailable"),
            error=lambda status: people_error(status, "server_error", "Internal server error"),
        )

    # data, shared by the API and tests

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        person = _merge({"name": {}, "emails": [], "org": {}}, _checked(data))
        person["uid"] = "p_" + uuid.uuid4().hex[:16]
        person["modified_at"] = _now()
        with self._lock:
            self.people[person["uid"]] = person
            snapshot = copy.deepcopy(person)
        self._emit("person.created", snapshot)
        return snapshot

    def update(self, uid: str, data: dict[str, Any]) -> dict[str, Any]:
        changes = _checked(data)
        with self._lock:
            person = self._get(uid)
            merged = _merge(person, changes)
            merged["modified_at"] = _now()
            self.people[uid] = merged
            snapshot = copy.deepcopy(merged)
        self._emit("person.updated", snapshot)
        return snapshot

    def delete(self, uid: str) -> None:
        with self._lock:
            person = self._get(uid)
            del self.people[uid]
        self._emit("person.deleted", person)

    def primary_email(self, uid: str) -> str | None:
        emails = self.people[uid]["emails"]
        chosen = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
        return None if chosen is None else str(chosen.get("value"))

    def _get(self, uid: str) -> dict[str, Any]:
        person = self.people.get(uid)
        if person is None:
            raise Problem(people_error(404, "not_found", f"No person {uid}"))
        return person

    def _emit(self, kind: str, person: dict[str, Any]) -> None:
        url = self.webhook_url
        if url is None:
            return
        body = json.dumps(
            {"type": kind, "event_id": str(uuid.uuid4()), "data": person}, separators=(",", ":")
        ).encode()
        secret = self.webhook_secret

        def build(attempt: int) -> tuple[str, bytes, dict[str, str]]:
            timestamp = str(int(time.time()))  # fresh on every attempt, hence a fresh signature
            return (
                url,
                body,
                {
                    "Content-Type": "application/json",
                    "X-People-Timestamp": timestamp,
                    "X-People-Signature": sign(secret, body, timestamp),
                },
            )

        self.outbox.submit(build)

    # auth and limits

    def _limit(self, request: Request) -> dict[str, str]:
        if not hmac.compare_digest(_presented_key(request).encode(), self.api_key.encode()):
            raise Problem(people_error(401, "unauthorized", "Missing or wrong API key"))
        now = time.time()
        with self._lock:
            while self._hits and self._hits[0] <= now - self.rate_window:
                self._hits.popleft()
            full = len(self._hits) >= self.rate_limit
            if not full:
                self._hits.append(now)
            reset = max(0, math.ceil(self._hits[0] + self.rate_window - now))
            headers = {
                "X-Quota-Limit": str(self.rate_limit),
                "X-Quota-Remaining": str(self.rate_limit - len(self._hits)),
                "X-Quota-Reset": str(reset),
            }
        if full:
            raise Problem(
                people_error(
                    429, "rate_limited", "Quota exceeded", **headers, **{"Retry-After": str(reset)}
                )
            )
        return headers

    def _api(self, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                headers = self._limit(request)
            except Problem as problem:  # no key, or over the quota (its headers included)
                return problem.response
            try:
                response = await handler(request)
            except Problem as problem:  # a 404 or 409 still counts, and says so
                response = problem.response
            response.headers.update(headers)
            return response

        return wrapped

    # endpoints

    async def list_people(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
            cursor = request.query_params.get("cursor")
            start = _position(cursor) if cursor else int(request.query_params.get("offset", "0"))
        except ValueError:
            return people_error(422, "invalid_query", "limit must be a number, cursor ours")
        if not 1 <= limit <= 200 or start < 0:
            return people_error(422, "invalid_query", "1 <= limit <= 200, offset >= 0")
        with self._lock:
            people = [copy.deepcopy(p) for p in self.people.values()]
        end = start + limit
        following = _cursor(end) if end < len(people) else None
        headers = {}
        if following is not None:
            link = request.url.include_query_params(cursor=following, limit=limit)
            headers["Link"] = f'<{link}>; rel="next"'
        return JSONResponse(
            {"results": {"items": people[start:end]}, "paging": {"next_cursor": following}},
            headers=headers,
        )

    async def create_person(self, request: Request) -> Response:
        return JSONResponse(self.create(await _body(request)), status_code=201)

    async def get_person(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(copy.deepcopy(self._get(request.path_params["uid"])))

    async def patch_person(self, request: Request) -> Response:
        return JSONResponse(self.update(request.path_params["uid"], await _body(request)))

    async def delete_person(self, request: Request) -> Response:
        self.delete(request.path_params["uid"])
        return Response(status_code=204)

    def _build(self) -> Starlette:
        item = PEOPLE + "/{uid}"
        routes = [
            Route(PEOPLE, self._api(self.list_people), methods=["GET"]),
            Route(PEOPLE, self._api(self.create_person), methods=["POST"]),
            Route(item, self._api(self.get_person), methods=["GET"]),
            Route(item, self._api(self.patch_person), methods=["PATCH"]),
            Route(item, self._api(self.delete_person), methods=["DELETE"]),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.outbox.start()
            try:
                yield
            finally:
                await self.outbox.stop()

        return Starlette(routes=routes, lifespan=lifespan)


def _presented_key(request: Request) -> str:
    """The key from ``X-Api-Key``, the ``api_key`` query parameter, or basic auth's user name."""
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    if "api_key" in request.query_params:
        return request.query_params["api_key"]
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode()


def _position(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("bad cursor") from None
    prefix, _, number = text.partition(":")
    if prefix != "pos" or not number.isdigit():
        raise ValueError("bad cursor")
    return int(number)


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    """The writable part of a person, or 422 naming what is wrong."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("uid", "modified_at"):
            continue
        shape = _SHAPE.get(key)
        if shape is None:
            raise Problem(people_error(422, "invalid_field", f"Unknown field {key}"))
        if shape is list:
            ok = isinstance(value, list) and all(
                isinstance(e, dict)
                and set(e) <= {"value", "primary"}
                and isinstance(e.get("value"), str)
                for e in value
            )
        else:
            ok = isinstance(value, dict) and all(
                k in shape and (v is None or isinstance(v, str)) for k, v in value.items()
            )
        if not ok:
            raise Problem(people_error(422, "invalid_field", f"Invalid {key}"))
        out[key] = value
    return out


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        current = out.get(key)
        out[key] = (
            _merge(current, value)
            if isinstance(current, dict) and isinstance(value, dict)
            else value
        )
    return out


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        raise Problem(people_error(400, "invalid_json", "Body must be JSON")) from None
    if not isinstance(data, dict):
        raise Problem(people_error(400, "invalid_json", "Body must be a JSON object"))
    return data
