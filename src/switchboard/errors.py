"""The error tree.

``AppError`` and its subclasses are rendered as ``{"detail": message}`` with their status code (the
docstring is the default message). Connector errors are ``TransientError`` (worth retrying: network,
429, 5xx) or ``TerminalError`` (retrying cannot help: 400, 403, bad credentials); retry decisions
are made by type, never by parsing messages.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Internal error."""

    status_code: int = 500
    headers: dict[str, str] | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or (self.__doc__ or "Error").strip().rstrip(".")
        if status_code is not None:
            self.status_code = status_code
        if headers is not None:
            self.headers = headers
        self.extra = extra or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
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
    """The provider call failed."""

    status_code = 502


class TransientError(ConnectorError):
    """The provider failed in a way that may succeed later (network, 429, 5xx)."""

    status_code = 503

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TerminalError(ConnectorError):
    """The provider refused in a way that retrying cannot fix."""

    status_code = 502
