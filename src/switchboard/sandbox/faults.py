"""Fault injection and a request log, shared by every simulator.

:class:`SandboxMiddleware` wraps a simulator's ASGI app and adds two control endpoints (never
faulted, never logged):

* ``/_sandbox/faults`` — ``GET`` the current :class:`Faults`; ``PUT`` replaces them (missing fields
  take their defaults), ``POST``/``PATCH`` merge the given fields, ``DELETE`` clears them.
* ``/_sandbox/requests`` — ``GET`` the request log ``{"total", "counts": {"GET /path": n},
  "requests": [{"method", "path", "query", "status", "fault", "at", "duration_ms"}]}``;
  ``DELETE`` clears it.

Faults apply to every other request, in this order: latency, down, 429 storm, random 5xx. The
bodies of the 429 and 503 answers are the provider's own (each simulator passes its renderers).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_sandbox/"
LOG_ENTRY = "switchboard.sandbox.log_entry"  # ASGI scope key of the request's log entry

DownMode = Literal["503", "reset"]


class Faults(BaseModel):
    """What to break. The defaults break nothing."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(0, ge=0, description="Added before every answer.")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests answered 5xx.")
    error_status: int = Field(500, ge=500, le=599, description="The status of injected errors.")
    storm: bool = Field(False, description="Answer every request 429 (the provider's body).")
    storm_retry_after: int | None = Field(
        1, ge=0, description="Retry-After (seconds) sent during a storm; null sends none."
    )
    down: DownMode | None = Field(
        None, description='"503": answer 503; "reset": drop the connection mid-answer.'
    )


Renderer = Callable[[], Response]


def _default_throttled() -> Response:
    return JSONResponse({"detail": "Too many requests"}, status_code=429)


def _default_unavailable() -> Response:
    return JSONResponse({"detail": "Service unavailable"}, status_code=503)


def _default_error(status: int) -> Response:
    return JSONResponse({"detail": "Internal server error"}, status_code=status)


class Problem(Exception):
    """Raised inside a simulator's endpoint: answer ``response`` (the provider's own error)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class FaultState:
    """The faults in force for one simulator (thread-safe; seeded for reproducible error rates)."""

    def __init__(self, faults: Faults | None = None, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults = faults or Faults()
        self._rng = random.Random(seed)

    @property
    def current(self) -> Faults:
        with self._lock:
            return self._faults

    def set(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def update(self, **changes: Any) -> Faults:
        with self._lock:
            self._faults = Faults.model_validate({**self._faults.model_dump(), **changes})
            return self._faults

    def clear(self) -> None:
        self.set(Faults())

    def roll_error(self) -> bool:
        with self._lock:
            rate = self._faults.error_rate
            return rate > 0 and self._rng.random() < rate


class RequestLog:
    """Every non-control request a simulator answered (bounded), with counts per method and path."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._counts: Counter[str] = Counter()
        self._total = 0

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)
            self._counts[f"{entry['method']} {entry['path']}"] += 1
            self._total += 1

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for e in self._entries
                if (method is None or e["method"] == method) and (path is None or e["path"] == path)
            )

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._total,
                "counts": dict(self._counts),
                "requests": list(self._entries),
            }

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()
            self._total = 0


class SandboxMiddleware:
    """Applies :class:`FaultState` to ``app``, logs its requests, serves the control endpoints."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: FaultState,
        log: RequestLog,
        throttled: Renderer = _default_throttled,
        unavailable: Renderer = _default_unavailable,
        error: Callable[[int], Response] = _default_error,
    ) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.throttled = throttled
        self.unavailable = unavailable
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/_sandbox/faults":
            await self._faults_endpoint(scope, receive, send)
            return
        if path == "/_sandbox/requests":
            await self._requests_endpoint(scope, receive, send)
            return
        if path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return

        started = time.monotonic()
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "status": None,
            "fault": None,
            "at": time.time(),
        }
        scope = {**scope, LOG_ENTRY: entry}
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                entry["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
                self.log.record(entry)

        async def send_logged(message: Message) -> None:
            # Logged before the answer's last byte leaves: a client that has its answer finds
            # the request in the log (a test counting requests right after a call never races).
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        try:
            await self._handle(scope, receive, send_logged, entry)
        finally:
            record()

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any]
    ) -> None:
        faults = self.faults.current
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        response: Response | None = None
        if faults.down == "reset":
            entry["fault"] = "reset"
            await _reset(send)
            return
        if faults.down == "503":
            entry["fault"], response = "down", self.unavailable()
        elif faults.storm:
            entry["fault"], response = "storm", self.throttled()
            if faults.storm_retry_after is not None:
                response.headers["Retry-After"] = str(faults.storm_retry_after)
        elif self.faults.roll_error():
            entry["fault"], response = "error", self.error(faults.error_status)
        if response is not None:
            entry["status"] = response.status_code
            await response(scope, receive, send)
            return

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, logging_send)

    async def _faults_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        method = request.method
        response: Response
        try:
            if method == "GET":
                pass
            elif method == "DELETE":
                self.faults.clear()
            elif method in ("PUT", "POST", "PATCH"):
                body = await request.body()
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                if data.get("down") is True:
                    data["down"] = "503"
                elif data.get("down") is False:
                    data["down"] = None
                if method == "PUT":
                    self.faults.set(Faults.model_validate(data))
                else:
                    self.faults.update(**data)
            else:
                response = JSONResponse({"detail": "Method not allowed"}, status_code=405)
                await response(scope, receive, send)
                return
            response = JSONResponse(self.faults.current.model_dump())
        except ValidationError as exc:
            response = JSONResponse(
                {"detail": json.loads(exc.json(include_url=False))}, status_code=422
            )
        except ValueError as exc:
            response = JSONResponse({"detail": str(exc)}, status_code=400)
        await response(scope, receive, send)

    async def _requests_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "DELETE":
            self.log.clear()
        elif method != "GET":
            await JSONResponse({"detail": "Method not allowed"}, status_code=405)(
                scope, receive, send
            )
            return
        await JSONResponse(self.log.snapshot())(scope, receive, send)


async def _reset(send: Send) -> None:
    """Start an answer, then stop mid-body: the server closes the connection under the client.

    ASGI has no way to reset a socket; an answer promised with a Content-Length that never
    arrives makes uvicorn close the transport, which clients see as a dropped connection.
    """
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"partial', "more_body": True})
