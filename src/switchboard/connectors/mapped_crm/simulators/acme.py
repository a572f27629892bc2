"""ACME CRM simulator: a REST CRM with its own field names, JWT client credentials, 10/min.

Wire facts: ``shared/providers/ACME_CRM.md``.

* ``POST /token`` ``{"client_id", "client_secret"}`` (JSON or form) → ``{"access_token": <HS256
  JWT, iss=acme>, "token_type": "bearer", "expires_in": 3600}``; wrong credentials → 401.
* ``/v1/acme/contacts`` CRUD with ``acme_first_name``, ``acme_last_name``, ``acme_email``; list
  with ``page`` (from 1) and ``per_page`` (≤100) → ``{"data": [...], "next_page": n | null}``.
* Every contacts call needs ``Authorization: Bearer <jwt>`` (401 JSON otherwise) and is limited to
  ``rate_limit`` requests per ``rate_window`` seconds per client and endpoint (method + route);
  beyond it: 429 with ``Retry-After`` (seconds) and ``X-RateLimit-Limit/-Remaining/-Reset``
  (``Reset``: epoch seconds when a slot frees up). Answers within the limit carry the same headers.
* Webhooks ``{"event": "contact.created|contact.updated|contact.deleted", "id": <uuid>,
  "payload": <record>}`` signed ``X-Acme-Signature: sha256=<hex HMAC-SHA256 of the raw body>``,
  retried on failure.

Control endpoints (no auth, no limit): ``POST /_sandbox/acme/contacts``,
``PUT|DELETE /_sandbox/acme/contacts/{id}`` (change data as an ACME user would; webhooks fire);
``GET|PUT|PATCH /_sandbox/acme/webhooks`` (``url``, ``secret``, ``max_attempts``,
``retry_base_seconds``) with delivery ``stats`` and ``attempts``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import jwt
from pydantic import BaseModel, ConfigDict, Field
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

CLIENT_ID = "sandbox"
CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - the sandbox's well-known credentials
WEBHOOK_SECRET = "acme-sandbox-webhook-secret"  # noqa: S105
FIELDS = ("acme_first_name", "acme_last_name", "acme_email")
CONTACTS = "/v1/acme/contacts"
ISSUER = "acme"

Handler = Callable[[Request], Awaitable[Response]]


def acme_error(status: int, error: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Acme-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class AcmeWebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    secret: str = WEBHOOK_SECRET
    max_attempts: int = Field(5, ge=1)
    retry_base_seconds: float = Field(1.0, ge=0)


class AcmeSimulator:
    """ACME CRM with client-credentials JWTs, per-client/endpoint limits and signed webhooks."""

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        token_ttl: int = 3600,
        rate_limit: int = 10,
        rate_window: float = 60.0,
        webhooks: AcmeWebhookSettings | None = None,
        faults: Faults | None = None,
        seed: int = 0,
    ) -> None:
        self.clients = {client_id: client_secret}
        self.token_ttl = token_ttl
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        # A fresh key per instance: tokens from one sandbox run never validate in another.
        self.signing_key = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.webhook_settings = webhooks or AcmeWebhookSettings()
        self.outbox = Outbox(
            max_attempts=self.webhook_settings.max_attempts,
            backoff_base=self.webhook_settings.retry_base_seconds,
        )
        self.faults = FaultState(faults, seed=seed)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(
            self._build(),
            faults=self.faults,
            log=self.log,
            throttled=lambda: acme_error(429, "rate_limited", "Too many requests"),
            unavailable=lambda: acme_error(503, "unavailable", "Service unavailable"),
            error=lambda status: acme_error(status, "server_error", "Internal server error"),
        )

    def configure_webhooks(self, **changes: Any) -> AcmeWebhookSettings:
        with self._lock:
            self.webhook_settings = AcmeWebhookSettings.model_validate(
                {**self.webhook_settings.model_dump(), **changes}
            )
            self.outbox.max_attempts = self.webhook_settings.max_attempts
            self.outbox.backoff_base = self.webhook_settings.retry_base_seconds
            return self.webhook_settings

    # data, shared by the API and the control endpoints

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        record = {**_fields(fields), "id": str(uuid.uuid4())}
        with self._lock:
            self.contacts[record["id"]] = record
        self._emit("contact.created", record)
        return dict(record)

    def update(self, contact_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        changes = _fields(fields)
        with self._lock:
            record = self._get(contact_id)
            record.update(changes)
            snapshot = dict(record)
        self._emit("contact.updated", snapshot)
        return snapshot

    def delete(self, contact_id: str) -> None:
        with self._lock:
            record = self._get(contact_id)
            del self.contacts[contact_id]
        self._emit("contact.deleted", record)

    def _get(self, contact_id: str) -> dict[str, Any]:
        record = self.contacts.get(contact_id)
        if record is None:
            raise Problem(acme_error(404, "not_found", f"Contact {contact_id} not found"))
        return record

    def _emit(self, event: str, record: dict[str, Any]) -> None:
        s = self.webhook_settings
        if s.url is None:
            return
        body = json.dumps(
            {"event": event, "id": str(uuid.uuid4()), "payload": record}, separators=(",", ":")
        ).encode()
        headers = {"Content-Type": "application/json", "X-Acme-Signature": sign(s.secret, body)}
        url = s.url
        self.outbox.submit(lambda attempt: (url, body, headers))

    # auth and limits

    def issue_token(self, client_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": client_id,
            "iat": now,
            "exp": now + self.token_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.signing_key, algorithm="HS256")

    def _client(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(acme_error(401, "unauthorized", "Missing bearer token"))
        try:
            claims = jwt.decode(
                token.strip(),
                self.signing_key,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Problem(acme_error(401, "token_expired", "Access token expired")) from None
        except jwt.InvalidTokenError:
            raise Problem(acme_error(401, "invalid_token", "Invalid access token")) from None
        return str(claims["sub"])

    def _limit(self, client: str, endpoint: str) -> dict[str, str]:
        now = time.time()
        with self._lock:
            hits = self._hits.setdefault((client, endpoint), deque())
            while hits and hits[0] <= now - self.rate_window:
                hits.popleft()
            full = len(hits) >= self.rate_limit
            if not full:
                hits.append(now)
            reset = hits[0] + self.rate_window
            headers = {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(self.rate_limit - len(hits)),
                "X-RateLimit-Reset": str(math.ceil(reset)),
            }
        if full:
            retry_after = str(max(1, math.ceil(reset - now)))
            raise Problem(
                acme_error(
                    429,
                    "rate_limited",
                    f"Rate limit of {self.rate_limit} requests per {self.rate_window:g}s exceeded",
                    **headers,
                    **{"Retry-After": retry_after},
                )
            )
        return headers

    def _api(self, endpoint: str, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                client = self._client(request)
                headers = self._limit(client, endpoint)
                response = await handler(request)
            except Problem as problem:
                return problem.response
            response.headers.update(headers)
            return response

        return wrapped

    # endpoints

    async def token(self, request: Request) -> Response:
        raw = await request.body()
        data: dict[str, Any]
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            data = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            try:
                data = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return acme_error(400, "invalid_request", "Body must be JSON")
            if not isinstance(data, dict):
                return acme_error(400, "invalid_request", "Body must be a JSON object")
        client_id, secret = str(data.get("client_id", "")), str(data.get("client_secret", ""))
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(secret, expected):
            return acme_error(401, "invalid_client", "Invalid client credentials")
        return JSONResponse(
            {
                "access_token": self.issue_token(client_id),
                "token_type": "bearer",
                "expires_in": self.token_ttl,
            }
        )

    async def list_contacts(self, request: Request) -> Response:
        try:
            page = int(request.query_params.get("page", "1"))
            per_page = int(request.query_params.get("per_page", "50"))
        except ValueError:
            return acme_error(422, "invalid_query", "page and per_page must be integers")
        if page < 1 or not 1 <= per_page <= 100:
            return acme_error(422, "invalid_query", "page >= 1 and 1 <= per_page <= 100")
        with self._lock:
            records = list(self.contacts.values())
        start = (page - 1) * per_page
        data = [dict(r) for r in records[start : start + per_page]]
        next_page = page + 1 if start + per_page < len(records) else None
        return JSONResponse({"data": data, "next_page": next_page})

    async def create_contact(self, request: Request) -> Response:
        return JSONResponse(self.create(await _body(request)), status_code=201)

    async def get_contact(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(dict(self._get(request.path_params["contact_id"])))

    async def update_contact(self, request: Request) -> Response:
        fields = await _body(request)
        return JSONResponse(self.update(request.path_params["contact_id"], fields))

    async def delete_contact(self, request: Request) -> Response:
        self.delete(request.path_params["contact_id"])
        return Response(status_code=204)

    async def control(self, request: Request) -> Response:
        try:
            if request.url.path.endswith("/webhooks"):
                if request.method in ("PUT", "PATCH"):
                    self.configure_webhooks(**await _body(request))
                return JSONResponse(
                    {
                        "settings": self.webhook_settings.model_dump(),
                        "stats": self.outbox.stats(),
                        "attempts": [a.as_json() for a in self.outbox.attempts()],
                    }
                )
            contact_id = request.path_params.get("contact_id")
            if contact_id is None:
                return JSONResponse(self.create(await _body(request)), status_code=201)
            if request.method == "DELETE":
                self.delete(contact_id)
                return Response(status_code=204)
            return JSONResponse(self.update(contact_id, await _body(request)))
        except Problem as problem:
            return problem.response

    def _build(self) -> Starlette:
        item = CONTACTS + "/{contact_id}"
        routes = [
            Route("/token", self.token, methods=["POST"]),
            Route(CONTACTS, self._api(f"GET {CONTACTS}", self.list_contacts), methods=["GET"]),
            Route(CONTACTS, self._api(f"POST {CONTACTS}", self.create_contact), methods=["POST"]),
            Route(item, self._api(f"GET {item}", self.get_contact), methods=["GET"]),
            Route(item, self._api(f"PUT {item}", self.update_contact), methods=["PUT"]),
            Route(item, self._api(f"DELETE {item}", self.delete_contact), methods=["DELETE"]),
            Route("/_sandbox/acme/contacts", self.control, methods=["POST"]),
            Route("/_sandbox/acme/contacts/{contact_id}", self.control, methods=["PUT", "DELETE"]),
            Route("/_sandbox/acme/webhooks", self.control, methods=["GET", "PUT", "PATCH"]),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.outbox.start()
            try:
                yield
            finally:
                await self.outbox.stop()

        return Starlette(routes=routes, lifespan=lifespan)


def _fields(raw: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(FIELDS) - {"id"})
    if unknown:
        raise Problem(acme_error(422, "invalid_field", f"Unknown fields: {', '.join(unknown)}"))
    bad = [k for k in FIELDS if k in raw and raw[k] is not None and not isinstance(raw[k], str)]
    if bad:
        raise Problem(acme_error(422, "invalid_field", f"Fields must be strings: {', '.join(bad)}"))
    return {k: raw[k] for k in FIELDS if k in raw}


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        raise Problem(acme_error(400, "invalid_json", "Body must be JSON")) from None
    if not isinstance(data, dict):
        raise Problem(acme_error(400, "invalid_json", "Body must be a JSON object"))
    return data
