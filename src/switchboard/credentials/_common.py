"""What every token provider shares: its reported state and the token-endpoint call."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urljoin

import httpx

from switchboard.credentials._errors import CredentialsError, CredentialsUnavailable

if TYPE_CHECKING:
    from switchboard.http._clock import Clock

State = Literal["ok", "unused", "needs_reauth", "error"]


@dataclass(frozen=True)
class CredentialStatus:
    """What ``/ready`` and ``GET /connections/{name}`` show: never a secret."""

    type: str
    state: State
    detail: str | None = None
    expires_at: datetime | None = None


class TokenProvider(Protocol):
    """Gives the bearer token of one connection."""

    @property
    def refreshable(self) -> bool:
        """Whether :meth:`invalidate` can lead to a different token (a 401 is worth one retry)."""
        ...

    async def token(self) -> str: ...

    async def invalidate(self, token: str) -> None:
        """The provider refused ``token`` (401): the next :meth:`token` must not return it."""
        ...

    async def status(self) -> CredentialStatus: ...


def resolve_url(base_url: str, url: str) -> str:
    """``/token`` relative to the connection's base URL; absolute URLs stay as they are."""
    return urljoin(base_url.rstrip("/") + "/", url.lstrip("/")) if "://" not in url else url


def as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it: only used to schedule a refresh."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def _message(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or "") or None
        for key in ("error_description", "message", "detail", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None


async def call_token_endpoint(
    http: httpx.AsyncClient, connection: str, what: str, request: httpx.Request
) -> tuple[httpx.Response, Any]:
    """Send a token request; 2xx returns (response, JSON body). Transport errors, 429 and 5xx
    raise :class:`CredentialsUnavailable`; the caller maps the other statuses, and gets the
    JSON body (or ``None``) with them. Never puts the request (it holds secrets) in an error."""
    try:
        response = await http.send(request)
    except httpx.TransportError as exc:
        raise CredentialsUnavailable(
            f"{connection}: {what} unreachable ({type(exc).__name__})", connection=connection
        ) from None
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = response.headers.get("retry-after")
        raise CredentialsUnavailable(
            f"{connection}: {what} answered {status}",
            connection=connection,
            provider_status=status,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    return response, body


def refused(connection: str, what: str, response: httpx.Response, body: Any) -> CredentialsError:
    message = _message(body)
    return CredentialsError(
        f"{connection}: {what} refused ({response.status_code})"
        + (f": {message}" if message else ""),
        connection=connection,
        provider_status=response.status_code,
        provider_message=message,
        body=body,
    )


class CachedToken:
    """A token cached until ``use_until`` (wall clock), fetched by one coroutine at a time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.value: str | None = None
        self.use_until = 0.0
        self.expires_at: float | None = None
        self.lock = asyncio.Lock()

    def fresh(self) -> str | None:
        if self.value is not None and self.clock.time() < self.use_until:
            return self.value
        return None

    def set(self, value: str, use_until: float, expires_at: float | None) -> None:
        self.value, self.use_until, self.expires_at = value, use_until, expires_at

    def drop(self, value: str) -> None:
        if self.value == value:
            self.value = None
