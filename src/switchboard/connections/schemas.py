from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from switchboard.connections.catalog import Entry
from switchboard.http import ConnectionStatus
from switchboard.settings import NAME, mask_urls


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


class EndUserIO(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=200, description="The product's id of its user.")
    email: str | None = Field(None, max_length=320)
    organisation: str | None = Field(None, max_length=200)


Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Name = Annotated[str, StringConstraints(pattern=f"^{NAME.pattern}$")]


class ConnectionOut(BaseModel):
    id: str = Field(description="Immutable: what every other object refers to.")
    alias: str = Field(description="The unique name people use; can be changed.")
    name: str = Field(description="The alias (kept for older clients).")
    kind: str
    integration: str | None = None
    account: str | None = Field(None, description="The provider's id of the connected account.")
    end_user: EndUserIO = Field(default_factory=EndUserIO)
    tags: list[str] = Field(default_factory=list)
    status: str = Field(description="ok | needs_reauth | paused | error")
    status_reason: str | None = None
    file_managed: bool = Field(description="Declared in the connections file: read-only here.")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    endpoint: str | None = Field(None, description="Base URL or feed URL (no credentials).")
    auth: str | None = Field(None, description="Credential type (token, oauth2, nango, …).")
    settings: dict[str, Any] | None = Field(
        None, description="The connection's settings, secrets masked (single connection only)."
    )
    outbound: OutboundOut | None = Field(
        None, description="Breaker, rate budget and credential state (connections that call out)."
    )
    sync: dict[str, Any] | None = Field(
        None,
        description="Connections that sync: last run, last success, failures since, and the "
        "store's counts (e.g. plans stored and skipped for a feed).",
    )

    @classmethod
    def of(cls, entry: Entry, status: ConnectionStatus | None = None) -> ConnectionOut:
        conn = entry.settings
        endpoint = getattr(conn, "base_url", None) or getattr(conn, "url", None)
        auth = getattr(conn, "auth", None)
        state, reason = entry.status, entry.status_reason
        creds = status.credentials if status is not None else None
        if state == "ok" and creds is not None and creds.state == "needs_reauth":
            state, reason = "needs_reauth", creds.detail
        return cls(
            id=entry.id,
            alias=entry.alias,
            name=entry.alias,
            kind=conn.kind,
            integration=entry.integration,
            account=entry.account,
            end_user=EndUserIO(
                id=entry.end_user.id,
                email=entry.end_user.email,
                organisation=entry.end_user.organisation,
            ),
            tags=list(entry.tags),
            status=state,
            status_reason=reason,
            file_managed=entry.file_managed,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
            endpoint=mask_urls(endpoint) if endpoint else None,
            auth=getattr(auth, "type", None),
            outbound=OutboundOut.of(status) if status is not None else None,
        )


class ConnectionList(BaseModel):
    items: list[ConnectionOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class ConnectionCreate(BaseModel):
    """A connection of an integration: its settings are the provider's connection settings
    (see the connections file's reference), filled in from the integration."""

    model_config = ConfigDict(extra="forbid")

    integration: str = Field(max_length=100)
    name: Name = Field(description="The alias: unique, lowercase letters, digits, - and _.")
    end_user: EndUserIO = Field(default_factory=EndUserIO)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    account: str | None = Field(None, max_length=200)
    auth: dict[str, Any] | None = Field(
        None,
        description='e.g. {"type": "token", "token": "…"}; an OAuth2 refresh token takes '
        "the integration's client id and secret.",
    )
    settings: dict[str, Any] = Field(default_factory=dict)


class ConnectionPatch(BaseModel):
    """Fields given are changed; ``settings`` are merged key by key (null removes a key);
    ``auth`` replaces the credentials; ``status`` pauses (``paused``) or resumes (``ok``)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    end_user: EndUserIO | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    account: str | None = Field(None, max_length=200)
    auth: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    status: Literal["ok", "paused"] | None = None


class ConnectionCreated(BaseModel):
    id: str
    alias: str


class IntegrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    provider: str = Field(max_length=40)
    client_id: str | None = Field(None, max_length=500)
    client_secret: str | None = Field(None, max_length=2000)
    webhook_secret: str | None = Field(None, max_length=2000)
    scopes: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        None, max_length=100
    )
    authorize_url: str | None = Field(None, max_length=2000)
    token_url: str | None = Field(None, max_length=2000)
    base_url: str | None = Field(None, max_length=2000)
    defaults: dict[str, Any] = Field(default_factory=dict)


class IntegrationOut(BaseModel):
    name: str
    provider: str
    client_id: str | None = None
    scopes: list[str] = Field(description="What its connections are asked to grant.")
    authorize_url: str | None = None
    token_url: str | None = None
    base_url: str | None = None
    has_client_secret: bool
    has_webhook_secret: bool
    file_managed: bool
    connections: int = Field(0, description="How many connections it has.")


class IntegrationList(BaseModel):
    items: list[IntegrationOut]


class ConnectSessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    integration: str = Field(max_length=100)
    end_user: EndUserIO = Field(default_factory=EndUserIO)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    return_url: str | None = Field(
        None, max_length=2000, description="Where the browser goes when it is done."
    )
    connection: str | None = Field(
        None, max_length=100, description="Re-authorise this connection (id or alias)."
    )


class ConnectSessionOut(BaseModel):
    token: str = Field(description="Single use; shown once.")
    url: str = Field(description="Send the end user's browser here.")
    expires_at: datetime
