"""Contact syncers (``hubspot``, ``mapped_crm``) and the job that applies a CRM webhook event."""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.config import HubSpotConnection
from switchboard.connectors.crm import CrmContact, crm_client
from switchboard.connectors.hubspot import HubSpotContacts
from switchboard.contacts import service, sync
from switchboard.http import Outbound
from switchboard.jobs import JobContext, handler
from switchboard.syncs import Syncer, register

EVENT_JOB = "contacts.refresh"
"""Re-read one contact from its CRM and store what the CRM says now. Payload ``{"connection",
"external_id", "occurred_at"?}`` (epoch ms of the newest event that asked for it)."""


def event_job_key(connection: str, external_id: str) -> str:
    return f"contact:{connection}:{external_id}"


register(
    Syncer(
        connection_kind="hubspot",
        stream="contacts",
        run=sync.sync_hubspot,
        interval=sync.interval,
        summary=sync.summary,
    )
)
register(
    Syncer(
        connection_kind="mapped_crm",
        stream="contacts",
        run=sync.sync_mapped,
        interval=sync.interval,
        summary=sync.summary,
    )
)


@handler(EVENT_JOB, concurrency=4)  # CRM reads: a rate-limited CRM must not take every slot
async def refresh(ctx: JobContext) -> None:
    """Events are not applied from their payloads: they arrive unordered, duplicated and
    partial, so the job reads the contact's current state. Jobs of one contact share a key (one
    at a time, coalesced), and the store refuses anything older than what it holds."""
    name = str(ctx.payload["connection"])
    external_id = str(ctx.payload["external_id"])
    conn = ctx.config.connection(name)
    if conn is None:
        return  # removed from the configuration since the event arrived
    outbound = ctx.outbound or Outbound.for_database(ctx.db)
    own = outbound is None
    if outbound is None:
        outbound = Outbound(ctx.config, ctx.db)
    try:
        crm = crm_client(outbound, ctx.config, name, mode="job")
        current = await crm.get(external_id)
        deleted: CrmContact | None = None
        if current is None and isinstance(conn, HubSpotConnection):
            assert isinstance(crm, HubSpotContacts)
            deleted = await crm.get_archived(external_id)
        async with ctx.db.session() as session:
            if current is not None:
                await service.store(session, name, [current])
                return
            if deleted is None:
                stored = await service.by_external(session, name, external_id)
                if stored is None or stored.deleted_at is not None:
                    return
                # Gone without a trace (a privacy deletion, a mapped CRM's delete): the event's
                # time is the deletion time.
                occurred = ctx.payload.get("occurred_at")
                at = (
                    datetime.fromtimestamp(int(occurred) / 1000, UTC)
                    if occurred is not None
                    else None
                )
                base = service.as_crm(stored)
                deleted = CrmContact(
                    external_id=external_id,
                    fields=base.fields,
                    created_at=base.created_at,
                    updated_at=max(at, stored.updated_at) if at and stored.updated_at else at,
                    archived=True,
                    raw=base.raw,
                )
            await service.store(session, name, [deleted], deleted=True)
    finally:
        if own:
            await outbound.aclose()
