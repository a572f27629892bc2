"""Provider failures as the hub's error types: transient (worth retrying) or terminal.

Connectors catch these by type (``TransientError`` / ``TerminalError`` from ``switchboard.errors``)
and read ``provider_status`` / ``provider_message`` / ``body``; they never parse HTTP themselves.
"""

from __future__ import annotations

from typing import Any

import httpx

from switchboard.errors import TerminalError, TransientError

_MAX_TEXT = 2000


class ProviderUnavailable(TransientError):
    """The provider is unavailable or rate-limiting; try again later."""


class ProviderRejected(TerminalError):
    """The provider refused the request; retrying cannot help."""


class CircuitOpen(ProviderUnavailable):
    """The connection's circuit breaker is open: the provider failed repeatedly."""


def response_body(response: httpx.Response) -> Any:
    """The decoded JSON body, or the text (truncated) when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text[:_MAX_TEXT]


def provider_message(body: Any) -> str | None:
    """The human message in the common error shapes (HubSpot ``message``, Nango
    ``error.message``, OAuth ``error_description``, FastAPI ``detail``)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for key in ("message", "error_description", "detail", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return None
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return None


def from_response(
    connection: str, response: httpx.Response, *, retry_after: float | None = None
) -> ProviderUnavailable | ProviderRejected:
    """Map a failed response: 429 and 5xx are transient, every other status is terminal."""
    body = response_body(response)
    message = provider_message(body)
    status = response.status_code
    text = f"{connection}: provider answered {status}" + (f": {message}" if message else "")
    if status == 429 or status >= 500:
        return ProviderUnavailable(
            text,
            connection=connection,
            provider_status=status,
            provider_message=message,
            body=body,
            retry_after=retry_after,
        )
    return ProviderRejected(
        text, connection=connection, provider_status=status, provider_message=message, body=body
    )
