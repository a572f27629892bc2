"""Applying TODO-app webhook deliveries to the task store (the receiver that verifies and parses
them is the provider's: ``connectors/todo_webhooks/webhooks.py``).

Each request is verified and validated on its own; the state changes of concurrent requests are
then applied together in one transaction (group commit, ``switchboard.batching``), in arrival
order, and every request is answered after that commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.batching import BatchWriter
from switchboard.changes import kinds as changes
from switchboard.db import Database, lock_keys
from switchboard.tasks import service
from switchboard.tasks.schemas import TodoEvent
from switchboard.tasks.service import Outcome
from switchboard.webhooks import service as deliveries

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Delivery:
    connection: str
    key: str
    body: bytes
    event: TodoEvent | None
    invalid: Outcome | None = None
    client: str | None = None


async def apply_deliveries(
    session: AsyncSession, items: list[Delivery], log: deliveries.RejectedLog | None = None
) -> list[Outcome]:
    """Apply deliveries in order: dedupe, the task state machine, the delivery log (a delivery
    that is not applied is logged within ``log``'s bounds)."""
    refs = {(d.connection, d.event.metadata.id) for d in items if d.event is not None}
    # Every event of one task is serialised across processes, redeliveries included.
    await lock_keys(session, (f"task:{conn}:{task_id}" for conn, task_id in refs))
    applied = await deliveries.applied_keys(
        session, {(d.connection, d.key) for d in items if d.event is not None}
    )
    tasks = await service.load_tasks(session, refs)
    outcomes: list[Outcome] = []
    rows = []
    for d in items:
        if d.event is None:
            assert d.invalid is not None
            outcome = d.invalid
        elif (d.connection, d.key) in applied:
            outcome = Outcome(202, "redelivery")
        else:
            ref = (d.connection, d.event.metadata.id)
            outcome, created = service.apply_event(tasks.get(ref), d.connection, d.event)
            if created is not None:
                session.add(created)
                tasks[ref] = created
            if outcome.applied:
                applied.add((d.connection, d.key))
                task = service.to_out(tasks[ref]).model_dump(mode="json")
                await changes.task_changed(session, outcome.outcome, task)
        outcomes.append(outcome)
        if not outcome.applied and log is not None and not log.admit(d.connection, d.client):
            continue
        first_application = outcome.applied and outcome.outcome != "redelivery"
        rows.append(
            deliveries.delivery_row(
                connection=d.connection,
                body=d.body,
                status_code=outcome.status,
                outcome=outcome.outcome,
                response=outcome.body,
                dedupe_key=d.key if first_application else None,
                client=d.client,
                keep_body=None if outcome.applied or log is None else log.body_bytes,
            )
        )
    await session.flush()
    await deliveries.record(session, rows)
    return outcomes


def delivery_writer(request: Request, db: Database) -> BatchWriter[Delivery, Outcome]:
    writer: BatchWriter[Delivery, Outcome] | None = getattr(request.app.state, "todo_writer", None)
    if writer is None or writer.db is not db:
        log = deliveries.rejected_log(request)

        async def apply(session: AsyncSession, items: list[Delivery]) -> list[Outcome]:
            return await apply_deliveries(session, items, log)

        writer = BatchWriter(db, apply)
        request.app.state.todo_writer = writer
    return writer
