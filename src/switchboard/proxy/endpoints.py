"""``ANY /proxy/{connection}/{path}``: a provider endpoint the hub has no feature for, called
with the connection's credentials, rate budget, breaker and retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Path, Request
from starlette.responses import Response, StreamingResponse

from switchboard.deps import Authenticated, get_config
from switchboard.http import Outbound
from switchboard.openapi import ERRORS
from switchboard.proxy import service

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
    response = StreamingResponse(_relay(answer, opened), status_code=answer.status_code)
    response.raw_headers = service.response_headers(answer.headers)
    return response


async def _relay(
    answer: httpx.Response, opened: AbstractAsyncContextManager[httpx.Response]
) -> AsyncIterator[bytes]:
    """The provider's body as it arrives, still encoded (its Content-Encoding and
    Content-Length are passed on), in bounded memory; the call is closed at the end."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except BaseException as exc:
        # Into the client's context: a failure mid-body counts against the breaker there.
        if not await opened.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await opened.__aexit__(None, None, None)


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
