"""``GET /search`` as raw ASGI, ahead of FastAPI itself, its middleware and the router.

The answer depends only on the window and the index version, so the work per request is
reading a few headers, parsing two times and a dictionary lookup in the current snapshot's answer
cache. Everything else costs more than that: routing, FastAPI's dependency resolution, a
``Request`` object, structlog's processors. This layer does what those layers do for this one
route, with the same helpers (API keys as ``deps.require_api_key``, validation and envelopes
from ``endpoints``, request id, Host check, metrics and access log from ``middleware``), and
adds what the hot path needs: ETag / ``If-None-Match`` (304) and gzip for large answers.

``create_app`` puts it in front of the whole FastAPI application (FastAPI's own ``__call__``
checks its telemetry configuration on every request). Whatever it does not handle goes down the
stack unchanged: other paths and methods, a request
with a body (the body limit's 413), a Host the check refuses (its 400). The FastAPI route in
``endpoints`` stays: it documents ``/search`` in ``/openapi.json`` and is the reference the
parity tests compare this path with.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import structlog
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from switchboard.errors import Unauthorized
from switchboard.events.endpoints import (
    SEARCH_FAILED,
    BadQuery,
    envelope_body,
    parse_window,
    status_code_name,
)
from switchboard.events.index import SearchIndex, index_for
from switchboard.middleware import (
    AccessLog,
    _HostCheck,
    _request_metrics,
    sane_request_id,
)

if TYPE_CHECKING:
    from switchboard.config import Config

log = structlog.get_logger("switchboard.events")

PATH = "/search"
_JSON = (b"content-type", b"application/json")
_VARY = (b"vary", b"Accept-Encoding")
_GZIP = (b"content-encoding", b"gzip")
_UNAUTHORIZED = envelope_body(status_code_name(401), Unauthorized().message)
_CHALLENGE = [(k.lower().encode(), v.encode()) for k, v in (Unauthorized.headers or {}).items()]
_FAILED = envelope_body(*SEARCH_FAILED)


class SearchFastPath:
    """ASGI middleware answering ``GET /search``; everything else goes to ``app``. ``state`` is
    the application's (its lifespan puts the database there)."""

    def __init__(self, app: ASGIApp, *, state: State, config: Config, access_log: bool) -> None:
        self.app = app
        self.state = state
        self.keys = [key.encode() for key in config.api_keys]
        hosts: Iterable[str] | None = config.allowed_hosts
        self.hosts = None if hosts is None else _HostCheck(hosts)
        self.access_log = AccessLog() if access_log else None
        self._db: object = None
        self._index: SearchIndex | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # One pass over the headers; the first of a repeated header counts, as in Starlette.
        host = api_key = authorization = if_none_match = accept_encoding = request_id = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = host if host is not None else value
            elif name == b"x-api-key":
                api_key = api_key if api_key is not None else value
            elif name == b"authorization":
                authorization = authorization if authorization is not None else value
            elif name == b"if-none-match":
                if_none_match = if_none_match if if_none_match is not None else value
            elif name == b"accept-encoding":
                accept_encoding = accept_encoding if accept_encoding is not None else value
            elif name == b"x-request-id":
                request_id = request_id if request_id is not None else value
            elif name in (b"content-length", b"transfer-encoding"):
                # A body: the middleware's limit (and its 413) apply; never the hot path.
                await self.app(scope, receive, send)
                return
        if self.hosts is not None and not self.hosts.allows(host):
            await self.app(scope, receive, send)  # the middleware answers its 400
            return
        rid = sane_request_id(request_id)
        rid_header = (b"x-request-id", rid.encode())

        status = 200
        headers: list[tuple[bytes, bytes]]
        body = b""
        if self.keys and not self._authorized(api_key, authorization):
            status, body = 401, _UNAUTHORIZED
            headers = [*_CHALLENGE, _JSON]
        else:
            params = query_params(scope["query_string"])
            try:
                starts_at, ends_at = parse_window(params.get("starts_at"), params.get("ends_at"))
            except BadQuery as exc:
                status, body, headers = 400, envelope_body(exc.code, exc.message), [_JSON]
            else:
                status, body, headers = await self._answer(
                    starts_at, ends_at, if_none_match, accept_encoding, rid
                )
        if status != 304:
            headers.insert(0, (b"content-length", str(len(body)).encode()))
        headers.append(rid_header)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

        elapsed = time.perf_counter() - started
        requests, latency = _request_metrics("GET", PATH, status)
        requests.inc()
        latency.observe(elapsed)
        if self.access_log is not None:
            self.access_log(rid, "GET", PATH, PATH, status, elapsed)

    def _authorized(self, api_key: bytes | None, authorization: bytes | None) -> bool:
        """``deps.require_api_key`` on raw headers: ``X-API-Key``, else ``Bearer``; every key
        compared in constant time."""
        presented = api_key.decode("latin-1") if api_key else ""
        if not presented and authorization:
            scheme, _, credentials = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                presented = credentials.strip()
        if not presented:
            return False
        candidate = presented.encode()  # as Starlette's str header, encoded as deps does
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched

    async def _answer(
        self,
        starts_at: float | None,
        ends_at: float | None,
        if_none_match: bytes | None,
        accept_encoding: bytes | None,
        request_id: str,
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            index = self._index_of()
            await index.ensure_fresh()
            snapshot = index.snapshot  # one read: the answer and its cache are one version's
            answer = snapshot.answer(starts_at, ends_at)
            body, etag = answer.body, answer.etag
            headers = [_JSON]
            if answer.compressible:
                # Vary on every answer that could have been compressed, so that caches keep
                # the two encodings apart.
                if accept_encoding is not None and accepts_gzip(accept_encoding):
                    body, etag = snapshot.gzipped(answer), answer.gzip_etag
                    headers.append(_GZIP)
                headers.append(_VARY)
            if if_none_match is not None and _matches(if_none_match, etag):
                # RFC 9110 15.4.5: a 304 carries the validators and Vary of the 200, no body.
                not_modified = [(b"etag", etag)]
                if answer.compressible:
                    not_modified.append(_VARY)
                return 304, b"", not_modified
            headers.append((b"etag", etag))
            return 200, body, headers
        except Exception:  # the contract's 500 envelope, not the hub's generic error body
            log.exception("search_failed", request_id=request_id)
            return 500, _FAILED, [_JSON]

    def _index_of(self) -> SearchIndex:
        db = self.state.db  # set by the lifespan; a new lifespan brings a new one
        if db is not self._db or self._index is None:
            self._index, self._db = index_for(db), db
        return self._index


def query_params(query_string: bytes) -> dict[str, str]:
    """Starlette's ``QueryParams`` as a dict (the last of a repeated name wins), without its
    cost: ``parse_qsl`` only where something is encoded."""
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    params = {}
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            params[name] = value
    return params


def _matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 13.1.2: weak comparison, ``*`` matches any current representation."""
    for candidate in if_none_match.split(b","):
        tag = candidate.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip`` or ``*``, unless its ``q`` is 0)."""
    allowed = None
    star = False
    for item in accept_encoding.lower().split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip()
        if coding not in (b"gzip", b"x-gzip", b"*"):
            continue
        q = 1.0
        for param in params.split(b";"):
            name, _, value = param.partition(b"=")
            if name.strip() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if coding == b"*":
            star = q > 0
        else:
            allowed = q > 0
    return allowed if allowed is not None else star
