"""The Pipedrive simulator: API v1 persons over HTTP, as ``docs/providers/pipedrive.md`` says.

* ``GET /v1/persons?start=&limit=`` (≤500, default 100; active persons by id) → ``{"success",
  "data": [...] | null, "additional_data": {"pagination": {"start", "limit",
  "more_items_in_collection", "next_start"?}}}``.
* ``GET|PUT|DELETE /v1/persons/{id}``, ``POST /v1/persons`` (201), ``GET /v1/persons/search``
  (``term``, ``fields``, ``exact_match``, ``start``, ``limit``).
* Auth: an API token (``x-api-token`` header or ``api_token`` query parameter) or a bearer access
  token (``access_tokens``, or issued by ``POST /oauth/token`` for the refresh-token grant with
  the app's HTTP Basic credentials); otherwise 401.
* ``rate_limit`` requests per ``rate_window`` seconds per token; every answer carries
  ``x-ratelimit-limit/-remaining/-reset`` (seconds), and past the limit 429 with
  ``Retry-After``. ``clock`` is injectable so tests move time instead of waiting.
* Errors are ``{"success": false, "error", "error_info", "data": null, "additional_data": null}``.
* Webhooks v1 on every change (API or control endpoints), HTTP Basic auth.

Control endpoints (no auth, no limit): ``POST /_sandbox/pipedrive/persons`` (``{"count",
"seed"}`` seeds persons, anything else creates one), ``PUT|DELETE
/_sandbox/pipedrive/persons/{id}``, ``POST /_sandbox/pipedrive/persons/{id}/merge``
(``{"into": id}``: a ``merged.person`` webhook), ``GET|PUT|PATCH
/_sandbox/pipedrive/webhooks`` (``url``, ``http_auth_user``, ``http_auth_password``,
``max_attempts``, ``retry_base_seconds``) with ``stats`` and ``attempts``; plus the shared
``/_sandbox/faults`` and ``/_sandbox/requests``.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from switchboard.connectors.pipedrive.simulator.store import Refused, Store, as_api
from switchboard.connectors.pipedrive.simulator.webhooks import Sender, WebhookSettings
from switchboard.sandbox.faults import (
    Faults,
    FaultState,
    Problem,
    RequestLog,
    SandboxMiddleware,
)

API_TOKEN = "pipedrive-sandbox-token"  # noqa: S105 - the sandbox's well-known credentials
CLIENT_ID = "pipedrive-sandbox-client"
CLIENT_SECRET = "pipedrive-sandbox-secret"  # noqa: S105
REFRESH_TOKEN = "pipedrive-sandbox-refresh"  # noqa: S105
WEBHOOK_USER = "switchboard"
"""The HTTP Basic credentials the sandbox sets on its webhook (``zero_config`` checks them)."""
WEBHOOK_PASSWORD = "pipedrive-sandbox-webhook"  # noqa: S105
PERSONS = "/v1/persons"
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
SEARCH_FIELDS = {"name", "email", "phone", "notes", "custom_fields"}

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, message: str, **headers: str) -> JSONResponse:
    body = {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def ok(data: Any, status: int = 200, additional: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return JSONResponse(body, status_code=status)


class PipedriveSimulator:
    def __init__(
        self,
        *,
        api_tokens: set[str] | None = None,
        access_tokens: set[str] | None = None,
        rate_limit: int = 80,
        rate_window: float = 2.0,
        webhooks: WebhookSettings | None = None,
        faults: Faults | None = None,
        persons: int = 0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_tokens = set(api_tokens if api_tokens is not None else {API_TOKEN})
        self.access_tokens = set(access_tokens or ())
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self.refresh_tokens = {REFRESH_TOKEN}
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self.webhooks = Sender(webhooks or WebhookSettings(), clock)
        self.store = Store(clock=clock, on_change=self.webhooks.send)
        if persons:
            self.store.seed(persons, seed=seed)
        self.faults = FaultState(faults, seed=seed)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(
            self._build(),
            faults=self.faults,
            log=self.log,
            throttled=lambda: error(429, "Request over limit"),
            unavailable=lambda: error(503, "Service unavailable"),
            error=lambda status: error(status, "Internal server error"),
        )

    # auth and limits

    def _token(self, request: Request) -> str:
        token = request.headers.get("x-api-token") or request.query_params.get("api_token")
        if token:
            if any(hmac.compare_digest(token, t) for t in self.api_tokens):
                return f"api:{token}"
            raise Problem(error(401, "unauthorized access"))
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and any(
            hmac.compare_digest(bearer.strip(), t) for t in self.access_tokens
        ):
            return f"oauth:{bearer.strip()}"
        raise Problem(error(401, "unauthorized access"))

    def _limit(self, token: str) -> dict[str, str]:
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(token, deque())
            while hits and hits[0] <= now - self.rate_window:
                hits.popleft()
            full = len(hits) >= self.rate_limit
            if not full:
                hits.append(now)
            reset_in = max(1, math.ceil(hits[0] + self.rate_window - now)) if hits else 0
            headers = {
                "x-ratelimit-limit": str(self.rate_limit),
                "x-ratelimit-remaining": str(self.rate_limit - len(hits)),
                "x-ratelimit-reset": str(reset_in),
            }
        if full:
            raise Problem(
                error(429, "Request over limit", **headers, **{"Retry-After": str(reset_in)})
            )
        return headers

    def _api(self, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                headers = self._limit(self._token(request))
                try:
                    response = await handler(request)
                except Refused as refused:
                    response = error(refused.status, refused.error)
            except Problem as problem:
                return problem.response
            response.headers.update(headers)
            return response

        return wrapped

    # endpoints

    async def list_persons(self, request: Request) -> Response:
        start, limit = _paging(request, default_limit=100, max_limit=500)
        persons = self.store.active()
        page = [as_api(p) for p in persons[start : start + limit]]
        more = start + limit < len(persons)
        pagination: dict[str, Any] = {
            "start": start,
            "limit": limit,
            "more_items_in_collection": more,
        }
        if more:
            pagination["next_start"] = start + limit
        return ok(page or None, additional={"pagination": pagination})

    async def get_person(self, request: Request) -> Response:
        return ok(as_api(self.store.get(_person_id(request))))

    async def create_person(self, request: Request) -> Response:
        return ok(as_api(self.store.create(await _body(request))), status=201)

    async def update_person(self, request: Request) -> Response:
        return ok(as_api(self.store.update(_person_id(request), await _body(request))))

    async def delete_person(self, request: Request) -> Response:
        person_id = _person_id(request)
        self.store.delete(person_id)
        return ok({"id": person_id})

    async def search_persons(self, request: Request) -> Response:
        q = request.query_params
        term = (q.get("term") or "").strip().lower()
        exact = q.get("exact_match", "false").lower() in ("true", "1")
        if len(term) < (1 if exact else 2):
            raise Refused(400, "Search term must be at least 2 characters long")
        fields = {f.strip() for f in (q.get("fields") or ",".join(SEARCH_FIELDS)).split(",")}
        if not fields <= SEARCH_FIELDS:
            raise Refused(
                400, f"Invalid search fields: {', '.join(sorted(fields - SEARCH_FIELDS))}"
            )
        start, limit = _paging(request, default_limit=100, max_limit=500)
        matches = [p for p in self.store.active() if _matches(p, term, fields, exact)]
        page = matches[start : start + limit]
        more = start + limit < len(matches)
        items = [{"result_score": 1.0 if exact else 0.5, "item": _search_item(p)} for p in page]
        pagination = {
            "start": start,
            "limit": limit,
            "more_items_in_collection": more,
            "next_start": start + limit if more else None,
        }
        return ok({"items": items}, additional={"pagination": pagination})

    async def token(self, request: Request) -> Response:
        """The refresh-token grant; the app authenticates with HTTP Basic."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            client_id = secret = ""
        expected = self.clients.get(client_id)
        if (
            scheme.lower() != "basic"
            or expected is None
            or not hmac.compare_digest(secret, expected)
        ):
            return JSONResponse({"success": False, "message": "Invalid client"}, status_code=401)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("latin-1")).items()}
        refresh = form.get("refresh_token") or ""
        if form.get("grant_type") != "refresh_token" or refresh not in self.refresh_tokens:
            return JSONResponse(
                {"error": "invalid_grant", "message": "Invalid grant"}, status_code=400
            )
        access = secrets.token_urlsafe(24)
        self.access_tokens.add(access)
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3599,
                "refresh_token": refresh,
                "scope": "base,contacts:full",
                "api_domain": str(request.base_url).rstrip("/"),
            }
        )

    async def control(self, request: Request) -> Response:
        try:
            if request.url.path.endswith("/webhooks"):
                if request.method in ("PUT", "PATCH"):
                    self.webhooks.configure(**await _body(request))
                return JSONResponse(
                    {
                        "settings": self.webhooks.settings.model_dump(),
                        "stats": self.webhooks.outbox.stats(),
                        "attempts": [a.as_json() for a in self.webhooks.outbox.attempts()],
                    }
                )
            raw_id = request.path_params.get("person_id")
            if raw_id is None:
                body = await _body(request)
                if "count" in body:
                    made = self.store.seed(int(body["count"]), seed=int(body.get("seed", 0)))
                    return JSONResponse([as_api(p) for p in made], status_code=201)
                return JSONResponse(as_api(self.store.create(body)), status_code=201)
            if request.url.path.endswith("/merge"):
                into = (await _body(request)).get("into")
                if isinstance(into, bool) or not isinstance(into, int):
                    raise Refused(400, "into must be a person id")
                return JSONResponse(as_api(self.store.merge(_person_id(request), into=into)))
            if request.method == "DELETE":
                self.store.delete(_person_id(request))
                return Response(status_code=204)
            return JSONResponse(
                as_api(self.store.update(_person_id(request), await _body(request)))
            )
        except Refused as refused:
            return error(refused.status, refused.error)
        except Problem as problem:
            return problem.response

    def _build(self) -> Starlette:
        item = PERSONS + "/{person_id}"
        control = "/_sandbox/pipedrive/persons"
        routes = [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route(PERSONS, self._api(self.list_persons), methods=["GET"]),
            Route(PERSONS, self._api(self.create_person), methods=["POST"]),
            Route(PERSONS + "/search", self._api(self.search_persons), methods=["GET"]),
            Route(item, self._api(self.get_person), methods=["GET"]),
            Route(item, self._api(self.update_person), methods=["PUT"]),
            Route(item, self._api(self.delete_person), methods=["DELETE"]),
            Route(control, self.control, methods=["POST"]),
            Route(control + "/{person_id}", self.control, methods=["PUT", "DELETE"]),
            Route(control + "/{person_id}/merge", self.control, methods=["POST"]),
            Route("/_sandbox/pipedrive/webhooks", self.control, methods=["GET", "PUT", "PATCH"]),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.webhooks.outbox.start()
            try:
                yield
            finally:
                await self.webhooks.outbox.stop()

        return Starlette(routes=routes, lifespan=lifespan)


def _paging(request: Request, *, default_limit: int, max_limit: int) -> tuple[int, int]:
    try:
        start = int(request.query_params.get("start", "0"))
        limit = int(request.query_params.get("limit", str(default_limit)))
    except ValueError:
        raise Refused(400, "start and limit must be integers") from None
    if start < 0 or not 1 <= limit <= max_limit:
        raise Refused(400, f"start must be >= 0 and limit between 1 and {max_limit}")
    return start, limit


def _person_id(request: Request) -> int:
    raw = str(request.path_params["person_id"])
    if not raw.isascii() or not raw.isdigit():
        raise Refused(404, "Person not found")
    return int(raw)


def _values(person: dict[str, Any], key: str) -> list[str]:
    return [str(i["value"]) for i in person.get(key) or [] if i.get("value")]


def _matches(person: dict[str, Any], term: str, fields: set[str], exact: bool) -> bool:
    candidates: list[str] = []
    if "name" in fields:
        candidates.append(str(person.get("name") or ""))
    if "email" in fields:
        candidates += _values(person, "email")
    if "phone" in fields:
        candidates += _values(person, "phone")
    texts = [c.lower() for c in candidates if c]
    return any(t == term for t in texts) if exact else any(term in t for t in texts)


def _search_item(person: dict[str, Any]) -> dict[str, Any]:
    org_id = person.get("org_id")
    return {
        "id": person["id"],
        "type": "person",
        "name": person.get("name"),
        "phones": _values(person, "phone"),
        "emails": _values(person, "email"),
        "visible_to": 3,
        "owner": {"id": 9_000_001},
        "organization": {"id": org_id, "name": person.get("org_name")} if org_id else None,
        "custom_fields": [],
        "notes": [],
    }


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        raise Refused(400, "Body must be JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "Body must be a JSON object")
    return data
