"""The error tree.

``AppError`` and its subclasses are rendered as ``{"detail": message}`` with their status code (the
docstring is the default message); a 422 as ``{"detail": [{loc, msg, type}]}``, the shape of
request validation errors, so every 422 has the one documented shape. Connector errors are
``TransientError`` (worth retrying: network, 429, 5xx) or ``TerminalError`` (retrying cannot
help: 400, 403, bad credentials); retry decisions are made by type, never by parsing messages.
"""

from __future__ import annotations

import math
from typing import Any


class AppError(Exception):
    """Internal error."""

    status_code: int = 500
    headers: dict[str, str] | None = None
    loc: tuple[str | int, ...] = ("body",)
    """Where the invalid input is (422 only)."""
    error_type: str = "value_error"
    """What kind of invalid input (422 only)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        loc: tuple[str | int, ...] | None = None,
    ) -> None:
        self.message = message or (self.__doc__ or "Error").strip().rstrip(".")
        if status_code is not None:
            self.status_code = status_code
        if headers is not None:
            self.headers = headers
        if loc is not None:
            self.loc = loc
        self.extra = extra or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        if self.status_code == 422:
            item = {"loc": list(self.loc), "msg": self.message, "type": self.error_type}
            return {"detail": [item], **self.extra}
        return {"detail": self.message, **self.extra}


class BadRequest(AppError):
    """Bad request."""

    status_code = 400


class Unauthorized(AppError):
    """Missing or invalid API key."""

    status_code = 401
    headers = {"WWW-Authenticate": 'ApiKey header="X-API-Key", Bearer'}


class NotFound(AppError):
    """Not found."""

    status_code = 404


class Conflict(AppError):
    """Conflict."""

    status_code = 409


class PayloadTooLarge(AppError):
    """Request body too large."""

    status_code = 413


class Unprocessable(AppError):
    """Unprocessable entity."""

    status_code = 422


class BadGateway(AppError):
    """The upstream provider failed."""

    status_code = 502


class ServiceUnavailable(AppError):
    """Service unavailable."""

    status_code = 503


class ConnectorError(AppError):
    """The provider call failed.

    Carries what the provider said, for operators and for the hub's own answers: the
    ``connection``, the provider's HTTP status, its message and its decoded body.
    """

    status_code = 502

    def __init__(
        self,
        message: str | None = None,
        *,
        connection: str | None = None,
        provider_status: int | None = None,
        provider_message: str | None = None,
        body: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.connection = connection
        self.provider_status = provider_status
        self.provider_message = provider_message
        self.provider_body = body


class TransientError(ConnectorError):
    """The provider failed in a way that may succeed later (network, 429, 5xx)."""

    status_code = 503

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kw: Any):
        if retry_after is not None and "headers" not in kw:
            # The hub's own answer carries the wait, so API callers see 503 + Retry-After.
            kw["headers"] = {"Retry-After": str(math.ceil(retry_after))}
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TerminalError(ConnectorError):
    """The provider refused in a way that retrying cannot fix."""

    status_code = 502


class RetryLater(Exception):
    """Run this job again in ``seconds`` (e.g. a provider's Retry-After).

    It does not use up one of the job's attempts; only the deadline bounds it.
    """

    def __init__(self, seconds: float, reason: str = "") -> None:
        self.seconds = max(float(seconds), 0.0)
        self.reason = reason or f"retry later ({self.seconds:g}s)"
        super().__init__(self.reason)
