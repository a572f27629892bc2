from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from switchboard.config import Connection
from switchboard.http import ConnectionStatus


class CredentialsOut(BaseModel):
    type: str = Field(description="token, oauth2, nango, client_credentials, api_key or basic.")
    state: str = Field(
        description="ok | unused (no token fetched yet) | needs_reauth (re-authorise the "
        "connection) | error (the last fetch failed; see detail)."
    )
    detail: str | None = None
    expires_at: datetime | None = Field(None, description="When the current access token expires.")


class OutboundOut(BaseModel):
    """Outbound health as seen by the process that answered."""

    breaker: str = Field(description="closed | open | half_open")
    consecutive_failures: int
    budgets: dict[str, int | None] = Field(
        default_factory=dict, description="Free rate-budget tokens per endpoint class."
    )
    credentials: CredentialsOut | None = None

    @classmethod
    def of(cls, status: ConnectionStatus) -> OutboundOut:
        creds = status.credentials
        return cls(
            breaker=status.breaker,
            consecutive_failures=status.consecutive_failures,
            budgets=status.budgets,
            credentials=CredentialsOut(
                type=creds.type, state=creds.state, detail=creds.detail, expires_at=creds.expires_at
            )
            if creds is not None
            else None,
        )


class ConnectionOut(BaseModel):
    name: str
    kind: str
    endpoint: str | None = Field(None, description="Base URL or feed URL (no credentials).")
    auth: str | None = Field(None, description="Credential type (token, oauth2, nango, …).")
    outbound: OutboundOut | None = Field(
        None, description="Breaker, rate budget and credential state (connections that call out)."
    )
    sync: dict[str, Any] | None = Field(
        None,
        description="Connections that sync: last run, last success, failures since, and the "
        "store's counts (e.g. plans stored and skipped for a feed).",
    )

    @classmethod
    def of(
        cls, name: str, conn: Connection, status: ConnectionStatus | None = None
    ) -> ConnectionOut:
        endpoint = getattr(conn, "base_url", None) or getattr(conn, "url", None)
        auth = getattr(conn, "auth", None)
        return cls(
            name=name,
            kind=conn.kind,
            endpoint=endpoint,
            auth=getattr(auth, "type", None),
            outbound=OutboundOut.of(status) if status is not None else None,
        )


class ConnectionList(BaseModel):
    items: list[ConnectionOut]
