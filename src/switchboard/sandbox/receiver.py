"""A webhook receiver for the hub's outbound change events: what a product's endpoint would be.

Each endpoint ``/sandbox/receiver/{name}`` records every delivery, verifies its Standard
Webhooks signature (with the ``standardwebhooks`` library) once it knows the secret, and
answers as told:

* ``PUT /sandbox/receiver/{name}/config`` ``{"secret": "whsec_…", "mode": "ok" | "fail" |
  "timeout" | "429" | "410", "times": N, "retry_after": S, "delay_ms": D}``: answer ``mode``
  to the next ``times`` deliveries (default: all until changed), 200 afterwards; ``fail`` is a
  500, ``timeout`` sleeps ``delay_ms`` (default 30 s) before answering, ``429`` carries
  ``Retry-After: retry_after`` when given.
* ``GET /sandbox/receiver/{name}/deliveries[?after=N]``: what it got, oldest first (id, type,
  subject, seq, whether the signature verified, the answer it gave, the ``Host`` header), after
  the first ``N`` (a poller reads only what is new).
* ``DELETE /sandbox/receiver/{name}/deliveries``: forget them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PATH = "/sandbox/receiver"
MODES = ("ok", "fail", "timeout", "429", "410")


@dataclass
class Delivery:
    webhook_id: str
    timestamp: str
    signature: str
    verified: bool | None
    status: int
    body: dict[str, Any]
    raw: str
    received_at: float
    host: str = ""
    """The ``Host`` header: the name the hub was given, whatever address it connected to."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "timestamp": self.timestamp,
            "verified": self.verified,
            "status": self.status,
            "id": self.body.get("id"),
            "seq": self.body.get("seq"),
            "type": self.body.get("type"),
            "subject": self.body.get("subject"),
            "data": self.body.get("data"),
            "received_at": self.received_at,
            "signature": self.signature,
            "raw": self.raw,
            "host": self.host,
        }


@dataclass
class Endpoint:
    secret: str | None = None
    mode: str = "ok"
    times: int | None = None
    retry_after: float | None = None
    delay_ms: int = 30_000
    deliveries: list[Delivery] = field(default_factory=list)

    def answer(self) -> str:
        if self.mode == "ok":
            return "ok"
        mode = self.mode
        if self.times is not None:
            self.times -= 1
            if self.times <= 0:
                self.mode, self.times = "ok", None
        return mode


class WebhookReceiver:
    """The receiver's state (tests may reach in) and its Starlette app."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.lock = threading.RLock()
        self.app = Starlette(
            routes=[
                Route(PATH + "/{name}", self._receive, methods=["POST"]),
                Route(PATH + "/{name}/config", self._configure, methods=["PUT", "GET"]),
                Route(PATH + "/{name}/deliveries", self._deliveries, methods=["GET", "DELETE"]),
            ]
        )

    def endpoint(self, name: str) -> Endpoint:
        with self.lock:
            return self.endpoints.setdefault(name, Endpoint())

    async def _receive(self, request: Request) -> Response:
        endpoint = self.endpoint(request.path_params["name"])
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified: bool | None = None
        if endpoint.secret is not None:
            try:
                Webhook(endpoint.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self.lock:
            mode = endpoint.answer()
        status = {"ok": 200, "fail": 500, "timeout": 200, "429": 429, "410": 410}[mode]
        if verified is False:
            status = 401
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        delivery = Delivery(
            webhook_id=headers.get("webhook-id", ""),
            timestamp=headers.get("webhook-timestamp", ""),
            signature=headers.get("webhook-signature", ""),
            verified=verified,
            status=status,
            body=parsed if isinstance(parsed, dict) else {},
            raw=body.decode("utf-8", "replace"),
            received_at=time.time(),
            host=headers.get("host", ""),
        )
        with self.lock:
            endpoint.deliveries.append(delivery)
        if mode == "timeout":
            await _hold(request, endpoint.delay_ms / 1000)
        answer_headers = {}
        if mode == "429" and endpoint.retry_after is not None:
            answer_headers["Retry-After"] = f"{endpoint.retry_after:g}"
        return JSONResponse({"received": status == 200}, status, headers=answer_headers)

    async def _configure(self, request: Request) -> Response:
        endpoint = self.endpoint(request.path_params["name"])
        if request.method == "PUT":
            try:
                given = await request.json()
            except ValueError:
                return JSONResponse({"detail": "send a JSON object"}, 422)
            if not isinstance(given, dict) or given.get("mode", "ok") not in MODES:
                return JSONResponse({"detail": f"mode is one of {', '.join(MODES)}"}, 422)
            with self.lock:
                if "secret" in given:
                    endpoint.secret = given["secret"]
                endpoint.mode = given.get("mode", "ok")
                endpoint.times = given.get("times")
                endpoint.retry_after = given.get("retry_after")
                endpoint.delay_ms = int(given.get("delay_ms", 30_000))
        return JSONResponse(
            {
                "mode": endpoint.mode,
                "times": endpoint.times,
                "retry_after": endpoint.retry_after,
                "has_secret": endpoint.secret is not None,
            }
        )

    async def _deliveries(self, request: Request) -> Response:
        endpoint = self.endpoint(request.path_params["name"])
        with self.lock:
            if request.method == "DELETE":
                endpoint.deliveries.clear()
                return Response(status_code=204)
            try:
                after = max(0, int(request.query_params.get("after", "0")))
            except ValueError:
                return JSONResponse({"detail": "after is a number of deliveries"}, 422)
            items = [d.as_dict() for d in endpoint.deliveries[after:]]
        return JSONResponse({"deliveries": items})


async def _hold(request: Request, seconds: float) -> None:
    """Wait ``seconds`` before answering, or less when the sender hangs up first (a client that
    timed out, a worker killed mid-delivery): a server shutting down then has no sleeping
    request to wait out."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(left, 0.1))
