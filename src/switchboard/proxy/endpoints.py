"""``ANY /proxy/{connection}/{path}``: a provider endpoint the hub has no feature for, called
with the connection's credentials, rate budget, breaker and retries."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import httpx
import structlog
from fastapi import APIRouter, Path, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from switchboard.deps import Authenticated, get_config
from switchboard.errors import TransientError
from switchboard.http import Outbound
from switchboard.openapi import ERRORS
from switchboard.proxy import service

log = structlog.get_logger("switchboard.proxy")

router = APIRouter(prefix="/proxy", tags=["proxy"], dependencies=Authenticated)

PATH = "/{connection}/{path:path}"
_PREFIX_SEGMENTS = 3  # b"", b"proxy", the connection

_DESCRIPTION = """Forwards the request to the connection's provider, below its base URL, and
streams the provider's answer back: its status, headers and body, whatever the status (a 404 or
409 here is the provider's). The connection's credentials replace the caller's; hop-by-hop
headers (RFC 9110 §7.6.1), `Host`, `Authorization`, `Cookie`, `X-API-Key` and `X-Switchboard-*`
are not forwarded, and `Set-Cookie` and authentication headers are not returned.

Calls share the connection's rate budget, circuit breaker and token refresh with the hub's own.
429, 5xx and network failures are retried for GET, HEAD, OPTIONS, PUT and DELETE; for POST and
PATCH only with `X-Switchboard-Retry: true`. The hub's own JSON errors: 400 for a path that
would leave the base URL (absolute URLs, `//`, `.`/`..` segments, encoded `/`, backslashes),
404 for an unknown connection, 422 for one without a provider API, 502/503 (with
`Retry-After`) when the provider cannot be reached, its breaker is open or its budget is spent.
"""

_PASSED_THROUGH: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": "The provider's answer, passed through (any status and media type).",
        "content": {"*/*": {"schema": {}}},
    }
}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Forwarded as is, in any media type (up to the hub's body size limit).",
        "content": {"*/*": {"schema": {}}},
    }
}
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


async def forward(
    request: Request,
    connection: Annotated[str, Path(description="A configured connection.")],
    path: Annotated[str, Path(description="The provider path, below its base URL.")],
) -> Response:
    outbound: Outbound = request.app.state.outbound
    found = service.target(get_config(request), outbound, connection)
    url = service.provider_url(
        found.base_url, _raw_remainder(request), request.scope.get("query_string", b"")
    )
    method = request.method
    headers = request.headers.raw
    # Read whole, within the hub's body limit (the middleware counts it): a call may be sent
    # again (a refreshed token, a connect failure, a retry), and a stream can be sent only once.
    body = b"".join([chunk async for chunk in request.stream()])
    opened = found.client.stream(
        method,
        url,
        mode="request",
        passthrough=True,
        idempotent=True if service.opted_in(headers) else None,  # None: by method
        headers=httpx.Headers(service.request_headers(headers)),
        content=body or None,
    )
    answer = await opened.__aenter__()
    return _Relay(answer, opened)


class _Relay(Response):
    """The provider's answer, sent on as it arrives: its status, its headers (filtered), and its
    body still encoded (so its Content-Encoding and Content-Length hold) in bounded memory.

    The provider call is closed by whoever sends the answer, however that ends (a client gone,
    a provider failing mid-body: that failure goes into the client's context, where it counts
    against the breaker)."""

    def __init__(
        self, answer: httpx.Response, opened: AbstractAsyncContextManager[httpx.Response]
    ) -> None:
        self.status_code = answer.status_code
        self.raw_headers = service.response_headers(answer.headers)
        self.background = None
        self._answer = answer
        self._opened = opened

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self._answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BaseException as exc:
            try:
                suppressed = await self._opened.__aexit__(type(exc), exc, exc.__traceback__)
            except TransientError as failure:
                # The provider failed mid-body, after its status was sent on: returning with
                # the answer incomplete makes the server drop the connection, so the caller
                # sees a cut answer, never a short one that looks whole.
                log.warning("proxy_answer_cut", error=failure.message)
                return
            if not suppressed:
                raise
        else:
            await self._opened.__aexit__(None, None, None)


def _raw_remainder(request: Request) -> bytes:
    """The path after ``/proxy/{connection}/`` as the caller sent it (percent-encoded), so that
    an encoded ``/`` or ``.`` is seen as such and not after decoding."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    raw = raw.split(b"?", 1)[0]  # some servers include the query
    parts = raw.split(b"/", _PREFIX_SEGMENTS)
    return parts[_PREFIX_SEGMENTS] if len(parts) > _PREFIX_SEGMENTS else b""


def _route(method: str) -> None:
    router.add_api_route(
        PATH,
        forward,
        methods=[method],
        name=f"proxy_{method.lower()}",
        summary=f"{method} a provider endpoint through a connection",
        description=_DESCRIPTION,
        response_class=Response,
        responses={**ERRORS(400, 404, 422, 502, 503), **_PASSED_THROUGH},
        openapi_extra=_BODY if method in _BODY_METHODS else None,
    )


for _method in ("GET", "HEAD", "OPTIONS", *_BODY_METHODS):
    _route(_method)
