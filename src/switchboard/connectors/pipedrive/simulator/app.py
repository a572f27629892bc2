"""The Pipedrive simulator: API v1 persons over HTTP, as ``docs/providers/pipedrive.md`` says.

* ``GET /v1/persons?start=&limit=`` (≤500, default 100; active persons by id) → ``{"success",
  "data": [...] | null, "additional_data": {"pagination": {"start", "limit",
  "more_items_in_collection", "next_start"?}}}``.
* ``GET|PUT|DELETE /v1/persons/{id}``, ``POST /v1/persons`` (201), ``GET /v1/persons/search``
  (``term``, ``fields``, ``exact_match``, ``start``, ``limit``).
* Auth: an API token (``x-api-token`` header or ``api_token`` query parameter) or a bearer access
  token (``access_tokens``, or issued by ``POST /oauth/token``); otherwise 401.
* OAuth: ``GET /oauth/authorize`` (``client_id``, ``redirect_uri``, ``state``, and optionally
  ``code_challenge`` + ``code_challenge_method=S256``) shows a consent page with a company field;
  its Allow/Deny post back and redirect with ``code`` or ``error=access_denied``.
  ``POST /oauth/token`` (HTTP Basic app credentials) takes the authorization-code and
  refresh-token grants; ``GET /v1/users/me`` names the user and the company a token is bound to.
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
``max_attempts``, ``retry_base_seconds``) with ``stats`` and ``attempts``, ``GET|PATCH
/_sandbox/pipedrive/oauth`` (``auto_approve``, ``redirect_uris``; answers them with the codes
issued and every authorize and exchange); plus the shared
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
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from switchboard.connectors.pipedrive.simulator.store import Refused, Store, as_api
from switchboard.connectors.pipedrive.simulator.webhooks import (
    COMPANY_ID,
    HOST,
    USER_ID,
    Sender,
    WebhookSettings,
)
from switchboard.sandbox.faults import (
    Faults,
    FaultState,
    Problem,
    RequestLog,
    SandboxMiddleware,
)
from switchboard.sandbox.oauth import AuthorizationServer, Consent, GrantRefused

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
SCOPES = ("base", "contacts:full")
USER_EMAIL = "sandbox-user@example.com"
# Token-endpoint messages per refused code exchange: Pipedrive documents all but the
# client mismatch and the verifier's, which are assumed (docs/providers/pipedrive.md).
REFUSED = {
    "unknown_code": "Invalid grant: authorization_code is invalid",
    "used_code": "Invalid grant: authorization_code is invalid",
    "expired_code": "Invalid grant: authorization_code has expired",
    "client_mismatch": "Invalid grant: authorization_code is invalid",
    "redirect_mismatch": "Invalid request: redirect_uri is invalid",
    "verifier": "Invalid grant: code_verifier is invalid",
}

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


def _oauth_error(status: int, error: str, message: str) -> JSONResponse:
    """An OAuth server error: RFC 6749's ``error`` code and Pipedrive's documented message (the
    body's shape is assumed)."""
    return JSONResponse({"success": False, "error": error, "message": message}, status_code=status)


def company_domain(company_id: int) -> str:
    """The company's subdomain (``<domain>.pipedrive.com``): the sandbox's company is the host
    its webhooks name."""
    return HOST.split(".")[0] if company_id == COMPANY_ID else f"sandbox-{company_id}"


@dataclass(frozen=True)
class Installation:
    """An app installed for a company: what an OAuth refresh token belongs to."""

    client_id: str
    company_id: int
    scopes: tuple[str, ...]


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
        redirect_uris: Collection[str] | None = None,
        auto_approve: bool = False,
        code_ttl: float = 300,
        scopes: tuple[str, ...] = SCOPES,
    ) -> None:
        """``redirect_uris``, ``auto_approve`` and ``code_ttl`` (seconds; Pipedrive's codes live
        5 minutes) configure the authorization-code grant (:mod:`switchboard.sandbox.oauth`);
        ``scopes`` are the app's, which Pipedrive sets in the app's settings, not per request."""
        self.api_tokens = set(api_tokens if api_tokens is not None else {API_TOKEN})
        self.access_tokens = set(access_tokens or ())
        # The company each OAuth access token is bound to (absent: the sandbox's company).
        self.token_companies: dict[str, int] = {}
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self.refresh_tokens = {REFRESH_TOKEN: Installation(CLIENT_ID, COMPANY_ID, scopes)}
        self.oauth = AuthorizationServer(
            self.clients,
            redirect_uris=redirect_uris,
            auto_approve=auto_approve,
            code_ttl=code_ttl,
            clock=clock,
        )
        self._consent = Consent(
            provider="Pipedrive",
            account_label="Pipedrive company (company id)",
            default_account=lambda: COMPANY_ID,
            scopes=lambda _params: scopes,
        )
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

    async def users_me(self, request: Request) -> Response:
        """The user behind the token and the company it is bound to (an API token: the
        sandbox's company; an OAuth token: the company picked on the consent page)."""
        _, _, bearer = request.headers.get("authorization", "").partition(" ")
        company_id = self.token_companies.get(bearer.strip(), COMPANY_ID)
        domain = company_domain(company_id)
        return ok(
            {
                "id": USER_ID,
                "name": "Sandbox User",
                "email": USER_EMAIL,
                "default_currency": "EUR",
                "locale": "en_US",
                "lang": 1,
                "is_admin": 1,
                "active_flag": True,
                "is_you": True,
                "timezone_name": "Europe/Tallinn",
                "company_id": company_id,
                "company_name": f"Sandbox company {company_id}",
                "company_domain": domain,
                "company_country": "EE",
            }
        )

    async def authorize(self, request: Request) -> Response:
        return await self.oauth.authorize(request, self._consent)

    async def token(self, request: Request) -> Response:
        """``POST /oauth/token``: the authorization-code and refresh-token grants; the app
        authenticates with HTTP Basic. Messages are those Pipedrive documents."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            client_id = secret = ""
        if scheme.lower() != "basic" or not client_id:
            return _oauth_error(
                401, "invalid_client", "Invalid client: cannot retrieve client credentials"
            )
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(secret, expected):
            return _oauth_error(401, "invalid_client", "Invalid client: client is invalid")
        form = dict(parse_qsl((await request.body()).decode("latin-1"), keep_blank_values=True))
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "Missing parameter: grant_type")
        if grant_type == "authorization_code":
            try:
                grant = self.oauth.redeem(
                    code=form.get("code", ""),
                    client_id=client_id,
                    redirect_uri=form.get("redirect_uri", ""),
                    verifier=form.get("code_verifier", ""),
                )
            except GrantRefused as refused:
                return _oauth_error(400, "invalid_grant", REFUSED[refused.reason])
            installation = Installation(client_id, grant.account_id, grant.scopes)
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = installation
        elif grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            found = self.refresh_tokens.get(refresh)
            if found is None or found.client_id != client_id:
                return _oauth_error(400, "invalid_grant", "Invalid grant: refresh_token is invalid")
            installation = found
        else:
            return _oauth_error(
                400, "unsupported_grant_type", "Unsupported grant type: grant_type is invalid"
            )
        access = secrets.token_urlsafe(24)
        self.access_tokens.add(access)
        self.token_companies[access] = installation.company_id
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3599,
                "refresh_token": refresh,
                "scope": ",".join(installation.scopes),
                # The company's own host in Pipedrive; here, the simulator that serves it.
                "api_domain": str(request.base_url).rstrip("/"),
            }
        )

    async def control_oauth(self, request: Request) -> Response:
        try:
            if request.method == "PATCH":
                body = await _body(request)
                auto_approve, uris = body.get("auto_approve"), body.get("redirect_uris")
                if auto_approve is not None and not isinstance(auto_approve, bool):
                    raise Refused(400, "auto_approve must be a boolean")
                if uris is not None and not (
                    isinstance(uris, list) and all(isinstance(u, str) for u in uris)
                ):
                    raise Refused(400, "redirect_uris must be a list of URLs")
                self.oauth.configure(auto_approve=auto_approve, redirect_uris=uris)
        except Refused as refused:
            return error(refused.status, refused.error)
        return JSONResponse(self.oauth.as_json())

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
        api = [
            Route("/v1/users/me", self._api(self.users_me), methods=["GET"]),
            Route(PERSONS, self._api(self.list_persons), methods=["GET"]),
            Route(PERSONS, self._api(self.create_person), methods=["POST"]),
            Route(PERSONS + "/search", self._api(self.search_persons), methods=["GET"]),
            Route(item, self._api(self.get_person), methods=["GET"]),
            Route(item, self._api(self.update_person), methods=["PUT"]),
            Route(item, self._api(self.delete_person), methods=["DELETE"]),
        ]
        routes = [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/oauth/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/_sandbox/pipedrive/oauth", self.control_oauth, methods=["GET", "PATCH"]),
            *api,
            # The company's own host serves the API under /api (api_domain + "/api/v1/…").
            Mount("/api", routes=api),
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
