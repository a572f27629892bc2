"""Outbound HTTP for every connector: timeouts, retries, rate budget, circuit breaker, tokens.

    outbound = Outbound(config, db)             # one per process; app.state.outbound in the API
    hubspot = outbound.client("hubspot")
    r = await hubspot.request("GET", "/crm/v3/objects/contacts", params={"limit": 100})
    r = await hubspot.request("POST", "/crm/v3/objects/contacts/search", json=query,
                              bucket=Bucket("search", "5/1s"), idempotent=True, mode="job")

Failures arrive as ``TransientError`` (``ProviderUnavailable``, ``CircuitOpen``,
``CredentialsUnavailable``: try later, ``retry_after`` says when) or ``TerminalError``
(``ProviderRejected``, ``CredentialsError``, ``NeedsReauthorization``), each carrying the
provider's status and message; in ``mode="job"`` a long wait is ``RetryLater`` instead.
"""

from switchboard.credentials import (
    CredentialsError,
    CredentialStatus,
    CredentialsUnavailable,
    NeedsReauthorization,
)
from switchboard.http._breaker import BreakerState, CircuitBreaker
from switchboard.http._budget import (
    Bucket,
    Limit,
    RateLimitHeaders,
    RateLimitReader,
    header_int,
    standard_headers,
)
from switchboard.http._client import ConnectionClient, Mode
from switchboard.http._clock import Clock, SystemClock
from switchboard.http._errors import CircuitOpen, ProviderRejected, ProviderUnavailable
from switchboard.http._outbound import ConnectionStatus, Outbound, readiness_check
from switchboard.http._retry import RetryPolicy, retry_after

__all__ = [
    "BreakerState",
    "Bucket",
    "CircuitBreaker",
    "CircuitOpen",
    "Clock",
    "ConnectionClient",
    "ConnectionStatus",
    "CredentialStatus",
    "CredentialsError",
    "CredentialsUnavailable",
    "Limit",
    "Mode",
    "NeedsReauthorization",
    "Outbound",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimitHeaders",
    "RateLimitReader",
    "RetryPolicy",
    "SystemClock",
    "header_int",
    "readiness_check",
    "retry_after",
    "standard_headers",
]
