"""One pure-ASGI middleware for every request: request id, Host check, body limit, access log,
metrics, and a last-resort 500 that never leaks internals."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.errors import PayloadTooLarge
from switchboard.logs import _redact as redact  # the redaction structlog applies to each value
from switchboard.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger("switchboard.http")
_quote = json.encoder.encode_basestring_ascii  # json.dumps' own escaping of one string


@functools.lru_cache(maxsize=1024)
def _label(value: str) -> str:
    """A method or route template, redacted and quoted: few distinct values, so cached."""
    return _quote(redact(value))


_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        access_log: bool,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = AccessLog() if access_log else None
        self.hosts = None if allowed_hosts is None else _HostCheck(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        response_started = False
        id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        declared = _content_length(scope)
        try:
            if self.hosts is not None and not self.hosts.allows(_host(scope)):
                detail = "Host not allowed: add it to SWITCHBOARD_ALLOWED_HOSTS to serve it"
                await _send_json(send_wrapper, 400, {"detail": detail})
                return
            if declared is not None and declared > self.max_body_bytes:
                raise PayloadTooLarge(f"Request body larger than {self.max_body_bytes} bytes")
            await self.app(scope, _limited(receive, self.max_body_bytes), send_wrapper)
        except PayloadTooLarge as exc:
            if not response_started:
                await _send_json(send_wrapper, exc.status_code, {"detail": exc.message})
        except Exception:
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if not response_started:
                await _send_json(
                    send_wrapper,
                    500,
                    {"detail": "Internal server error", "request_id": request_id},
                )
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            route_label: str = template if isinstance(template, str) else "unmatched"
            requests, latency = _request_metrics(scope["method"], route_label, status)
            requests.inc()
            latency.observe(elapsed)
            if self.access_log is not None:
                self.access_log(
                    request_id, scope["method"], route_label, scope["path"], status, elapsed
                )
            structlog.contextvars.unbind_contextvars("request_id")


class AccessLog:
    """One ``request`` line per request: the fields, order and redaction structlog gives it
    (``request_id``, ``level``, ``timestamp`` last), rendered directly when logs are JSON lines.

    structlog's processor chain (context variables, level, time stamp, redaction, renderer)
    took 24 us a line; this takes about 5. Lines are written once per event-loop turn, together:
    one write for every request answered in that turn instead of one each.
    """

    def __init__(self) -> None:
        renderer = structlog.get_config()["processors"][-1]
        self.direct = isinstance(renderer, structlog.processors.JSONRenderer)
        self.enabled = logging.getLogger().isEnabledFor(logging.INFO)
        self._pending: list[str] = []
        self._second = -1
        self._stamp = ""

    def __call__(
        self, request_id: str, method: str, route: str, path: str, status: int, elapsed: float
    ) -> None:
        duration_ms = round(elapsed * 1000, 2)
        if not self.direct:
            log.info(
                "request",
                method=method,
                route=route,
                path=path,
                status=status,
                duration_ms=duration_ms,
            )
            return
        if not self.enabled:
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # What JSONRenderer's json.dumps writes, field by field: a whole dict took 9 us.
        line = (
            f'{{"method": {_label(method)}, "route": {_label(route)}, '
            f'"path": {_quote(redact(path))}, "status": {status:d}, '
            f'"duration_ms": {duration_ms!r}, "event": "request", '
            f'"request_id": {_quote(request_id)}, "level": "info", '
            f'"timestamp": "{self._stamp}.{int((now - second) * 1e6):06d}Z"}}'
        )
        pending = self._pending
        pending.append(line)
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a synchronous caller): write at once
                self.flush()

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            sys.stderr.write("\n".join(lines) + "\n")


_METRIC_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _request_metrics(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of these labels, looked up once: resolving
    labels costs more than counting (2 us a request)."""
    key = (method, route, status)
    children = _METRIC_CHILDREN.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_LATENCY.labels(method, route),
        )
        if len(_METRIC_CHILDREN) < 10_000:  # clients choose methods: keep the cache bounded
            _METRIC_CHILDREN[key] = children
    return children


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return sane_request_id(value)
    return sane_request_id(None)


def sane_request_id(header: bytes | None) -> str:
    """The client's ``X-Request-ID`` when it is sane, else a new one."""
    if header is not None:
        candidate = header.decode("latin-1")
        if _SANE_ID.match(candidate):
            return candidate
    return os.urandom(16).hex()  # what uuid4().hex carries, at a quarter of the cost


class _HostCheck:
    """Host names (any port) a request may be addressed to: exact names and ``*.suffix``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names = [p.lower().rstrip(".") for p in patterns]
        self.exact = frozenset(n for n in names if not n.startswith("*."))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def allows(self, header: bytes | None) -> bool:
        if not header:
            return False
        value = header.decode("latin-1").lower()
        if value.startswith("["):  # an IPv6 literal: its colons are not the port's
            host = value[: value.find("]") + 1]
        else:
            host = value.partition(":")[0].rstrip(".")
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))


def _host(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"host":
            host: bytes = value
            return host
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    """Count streamed body bytes (chunked uploads carry no Content-Length)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # An HTTPException: FastAPI re-raises those from body parsing (anything else it
                # turns into a 400), and the app's handler renders it as JSON.
                raise HTTPException(413, f"Request body larger than {limit} bytes")
        return message

    return wrapped


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
