"""What every contact syncer shares: counting a run, the store's summary, tombstones.

Every page of contacts is stored in the same transaction as the cursor that moves past it, so a
run killed at any point resumes where the last committed page ended: no gap, and no duplicate
(pages are upserts, and the cursor never points before stored data). Each CRM's syncer lives in
its provider's package (``connectors/<provider>/sync.py``).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.connectors.crm import CrmContact
from switchboard.contacts import service
from switchboard.db import utcnow
from switchboard.syncs import SyncResult


def now_ms() -> int:
    return int(time.time() * 1000)


class Counts:
    """What a run did so far."""

    def __init__(self) -> None:
        self.pages = 0
        self.upserted = 0
        self.deleted = 0

    def result(self, **detail: Any) -> SyncResult:
        return SyncResult(
            pages=self.pages, upserted=self.upserted, deleted=self.deleted, detail=detail
        )


async def summary(session: AsyncSession, connection: str) -> dict[str, Any]:
    return await service.counts(session, connection)


def deleted_now(contact: CrmContact) -> CrmContact:
    """A tombstone stamped now: the CRM gives no deletion time, and the hub saw it gone now."""
    return CrmContact(
        external_id=contact.external_id,
        fields=contact.fields,
        created_at=contact.created_at,
        updated_at=utcnow(),
        archived=True,
        raw=contact.raw,
    )
