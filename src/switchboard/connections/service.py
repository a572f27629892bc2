"""Creating, changing and deleting integrations and connections (the API's side).

Each change is one transaction that also bumps the catalog's version, so every process picks
it up (:mod:`switchboard.connections.store`). File-managed ones are read-only here: the file is
their source, and the next start would undo an API change.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.changes.kinds import connection_event
from switchboard.connections.catalog import (
    BY_KIND,
    EndUser,
    IntegrationEntry,
    InvalidConnection,
    masked_settings,
    validate,
)
from switchboard.connections.schemas import (
    ConnectionCreate,
    ConnectionPatch,
    IntegrationIn,
    IntegrationOut,
)
from switchboard.connections.store import integration_entry, seal, unseal
from switchboard.connections.versions import bump
from switchboard.credentials import SecretBox, SecretKeyError
from switchboard.db import utcnow
from switchboard.errors import BadRequest, Conflict, NotFound, Unprocessable
from switchboard.events.versions import bump_version
from switchboard.models import (
    ConnectionRow,
    Contact,
    ContactCursor,
    Credential,
    EventPlan,
    EventPlanStaging,
    FeedState,
    Integration,
    Job,
    RateBucket,
    Schedule,
    SyncRun,
    Task,
    WebhookDelivery,
)

READ_ONLY = "declared in the connections file: change it there"


def new_id() -> str:
    """An immutable connection id: ``conn_`` and 20 random base32 characters."""
    return "conn_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


# --- integrations ------------------------------------------------------------------------------


def integration_out(row: Integration, connections: int = 0) -> IntegrationOut:
    settings = row.settings or {}
    provider = BY_KIND.get(row.provider)
    oauth = provider.oauth if provider is not None else None
    return IntegrationOut(
        name=row.name,
        provider=row.provider,
        client_id=settings.get("client_id"),
        scopes=list(settings.get("scopes") or (oauth.scopes if oauth else ())),
        authorize_url=settings.get("authorize_url") or (oauth.authorize_url if oauth else None),
        token_url=settings.get("token_url"),
        base_url=settings.get("base_url"),
        has_client_secret=bool(settings.get("has_client_secret")),
        has_webhook_secret=bool(settings.get("has_webhook_secret")),
        file_managed=row.file_managed,
        connections=connections,
    )


async def list_integrations(session: AsyncSession) -> list[IntegrationOut]:
    counts = dict(
        (
            await session.execute(
                select(ConnectionRow.integration, func.count()).group_by(ConnectionRow.integration)
            )
        ).all()
    )
    rows = (await session.scalars(select(Integration).order_by(Integration.name))).all()
    return [integration_out(r, counts.get(r.name, 0)) for r in rows]


async def put_integration(
    session: AsyncSession, box: SecretBox, body: IntegrationIn
) -> Integration:
    """Create an integration, or replace one made through the API (201 vs 200 is the caller's)."""
    if body.provider not in BY_KIND:
        known = ", ".join(sorted(BY_KIND))
        raise Unprocessable(
            f"Unknown provider {body.provider!r} ({known})", loc=("body", "provider")
        )
    now = utcnow()
    row = await session.get(Integration, body.name, with_for_update=True)
    if row is not None and row.file_managed:
        raise Conflict(f"Integration {body.name!r} is {READ_ONLY}")
    if row is not None and row.provider != body.provider:
        raise Conflict(f"Integration {body.name!r} is a {row.provider} integration")
    secret_values = {
        k: v
        for k, v in (("client_secret", body.client_secret), ("webhook_secret", body.webhook_secret))
        if v
    }
    public = body.model_dump(
        exclude={"name", "provider", "client_secret", "webhook_secret"}, exclude_none=True
    )
    public["has_client_secret"] = "client_secret" in secret_values
    public["has_webhook_secret"] = "webhook_secret" in secret_values
    if row is None:
        row = Integration(
            name=body.name,
            provider=body.provider,
            file_managed=False,
            created_at=now,
        )
        session.add(row)
    row.settings = public
    row.secrets = seal(box, secret_values)
    row.updated_at = now
    await bump(session)
    return row


async def integration(session: AsyncSession, box: SecretBox, name: str) -> IntegrationEntry:
    row = await session.get(Integration, name)
    if row is None:
        raise Unprocessable(f"No integration named {name!r}", loc=("body", "integration"))
    try:
        return integration_entry(row, box)
    except SecretKeyError:  # stored under a key this hub no longer has (not a 500)
        raise Conflict(
            f"Integration {name!r}: its secrets cannot be decrypted with the current secret key"
        ) from None


# --- connections -------------------------------------------------------------------------------


def _effective(integ: IntegrationEntry | None, raw: Mapping[str, Any], kind: str) -> Any:
    effective = integ.defaults_for(raw) if integ is not None else dict(raw)
    effective.setdefault("kind", kind)
    try:
        return validate(effective, "settings.")
    except InvalidConnection as exc:
        raise Unprocessable(
            f"Invalid connection settings: {exc}", loc=("body", "settings")
        ) from None


async def _alias_free(session: AsyncSession, alias: str, but: str | None = None) -> None:
    holder = await session.scalar(select(ConnectionRow.id).where(ConnectionRow.alias == alias))
    if holder is not None and holder != but:
        raise Conflict(f"A connection named {alias!r} exists already")
    taken = await session.get(ConnectionRow, alias)
    if taken is not None and taken.id != but:
        raise Conflict(f"A connection with id {alias!r} exists already")


async def create(
    session: AsyncSession,
    box: SecretBox,
    body: ConnectionCreate,
    *,
    connection_id: str | None = None,
) -> ConnectionRow:
    integ = await integration(session, box, body.integration)
    await _alias_free(session, body.name)
    raw: dict[str, Any] = dict(body.settings)
    if body.auth is not None:
        raw["auth"] = body.auth
    raw.pop("kind", None)
    settings = _effective(integ, raw, integ.provider)
    now = utcnow()
    row = ConnectionRow(
        id=connection_id or new_id(),
        alias=body.name,
        kind=integ.provider,
        integration=integ.name,
        account=body.account,
        end_user_id=body.end_user.id,
        end_user_email=body.end_user.email,
        end_user_organisation=body.end_user.organisation,
        tags=list(dict.fromkeys(body.tags)),
        settings=masked_settings(settings),
        config=seal(box, raw),
        status="ok",
        status_reason=None,
        file_managed=False,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await bump(session)
    await connection_event(session, "connection.created", row)
    return row


async def editable(session: AsyncSession, connection_id: str) -> ConnectionRow:
    row = await session.get(ConnectionRow, connection_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No connection named {connection_id!r}")
    if row.file_managed:
        raise Conflict(f"Connection {row.alias!r} is {READ_ONLY}")
    return row


async def patch(
    session: AsyncSession, box: SecretBox, connection_id: str, body: ConnectionPatch
) -> ConnectionRow:
    row = await editable(session, connection_id)
    given = body.model_fields_set
    changed = [
        f
        for f in ("name", "end_user", "tags", "account", "status", "settings", "auth")
        if f in given
    ]
    if body.name is not None and body.name != row.alias:
        await _alias_free(session, body.name, but=row.id)
        row.alias = body.name
    if "end_user" in given:
        user = body.end_user or EndUser()
        row.end_user_id, row.end_user_email = user.id, user.email
        row.end_user_organisation = user.organisation
    if body.tags is not None:
        row.tags = list(dict.fromkeys(body.tags))
    if "account" in given:
        row.account = body.account
    if body.status is not None and body.status != row.status:
        row.status = body.status
        row.status_reason = "paused through the API" if body.status == "paused" else None
    if "settings" in given or "auth" in given:
        raw = unseal(box, row.config)
        for key, value in (body.settings or {}).items():
            if key in ("kind", "auth"):
                raise Unprocessable(
                    f"settings.{key} cannot be changed here", loc=("body", "settings")
                )
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value
        if "auth" in given:
            if body.auth is None:
                raw.pop("auth", None)
            else:
                raw["auth"] = body.auth
        integ = await integration(session, box, row.integration) if row.integration else None
        settings = _effective(integ, raw, row.kind)
        row.settings = masked_settings(settings)
        row.config = seal(box, raw)
        if row.status == "needs_reauth" and "auth" in given:
            row.status, row.status_reason = "ok", None
    row.updated_at = utcnow()
    await bump(session)
    await connection_event(session, "connection.updated", row, changed)
    return row


async def remove(session: AsyncSession, connection_id: str, *, keep_data: bool) -> dict[str, int]:
    """Delete a connection: its schedule stops, its pending jobs are cancelled, its
    credentials and budgets are erased; its synced data is deleted unless ``keep_data`` (kept
    rows stay readable under the id). Users whose CRM it was keep naming it, so their changes
    wait rather than go to another CRM. The counts of what went."""
    row = await editable(session, connection_id)
    counts: dict[str, int] = {}

    async def gone(name: str, stmt: Any) -> None:
        result = await session.execute(stmt)
        counts[name] = int(getattr(result, "rowcount", 0) or 0)

    await gone("schedules", delete(Schedule).where(Schedule.name == f"sync:{row.id}"))
    await gone(
        "jobs",
        delete(Job).where(Job.connection == row.id, Job.state == "pending"),
    )
    await gone("credentials", delete(Credential).where(Credential.connection == row.id))
    await gone("budgets", delete(RateBucket).where(RateBucket.connection == row.id))
    if not keep_data:
        for name, model in (
            ("contacts", Contact),
            ("contact_cursors", ContactCursor),
            ("sync_runs", SyncRun),
            ("tasks", Task),
            ("event_plans", EventPlan),
            ("event_plan_staging", EventPlanStaging),
            ("feed_state", FeedState),
            ("webhook_deliveries", WebhookDelivery),
        ):
            await gone(name, delete(model).where(model.connection == row.id))
        if counts["event_plans"]:
            await bump_version(session)  # what /search shows changed
    await connection_event(session, "connection.deleted", row)
    await session.delete(row)
    await bump(session)
    return {k: v for k, v in counts.items() if v}


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Invalid cursor") from None
    if not value or encode_cursor(value) != cursor:
        raise BadRequest("Invalid cursor")
    return value


def encode_cursor(connection_id: str) -> str:
    return base64.urlsafe_b64encode(connection_id.encode()).decode().rstrip("=")
