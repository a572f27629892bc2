"""Per-user task reports for a window ``(start, end]``, every state evaluated as of ``end``.

Boundaries (so that no task falls between lists, and none is in two):
- *completed*: completed in the window (``start < completed_at <= end``) and not deleted by
  ``end``; at = ``completed_at``.
- *new*: created in the window (``start < created_at <= end``), not completed and not deleted by
  ``end``; at = ``created_at``.
- *old*: created at or before ``start``, not completed and not deleted by ``end``; at =
  ``created_at``.
A task deleted at or before ``end`` is in no list; one completed at or before ``start`` neither.
Content is the latest known. Tasks of every ``todo_webhooks`` connection are reported together.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.models import Task
from switchboard.reports.schemas import Period, ReportTask, TaskReport


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def compute(
    session: AsyncSession, start: datetime, end: datetime, user_id: str | None = None
) -> dict[str, TaskReport]:
    """Reports of every user with a task in some list (or of ``user_id`` only)."""
    stmt = (
        select(Task.user_id, Task.task_id, Task.content, Task.created_at, Task.completed_at)
        .where(
            Task.created_at <= end,
            or_(Task.deleted_at.is_(None), Task.deleted_at > end),
            or_(Task.completed_at.is_(None), Task.completed_at > start),
        )
        .order_by(Task.user_id, Task.created_at, Task.task_id)
    )
    if user_id is not None:
        stmt = stmt.where(Task.user_id == user_id)
    lists: dict[str, tuple[list[ReportTask], list[ReportTask], list[ReportTask]]] = defaultdict(
        lambda: ([], [], [])
    )
    for user, task_id, content, created_at, completed_at in (await session.execute(stmt)).all():
        new, completed, old = lists[user]
        if completed_at is not None and completed_at <= end:
            completed.append(
                ReportTask(id=task_id, content=content, createdOrCompletedAt=iso(completed_at))
            )
        elif created_at > start:
            new.append(
                ReportTask(id=task_id, content=content, createdOrCompletedAt=iso(created_at))
            )
        else:
            old.append(
                ReportTask(id=task_id, content=content, createdOrCompletedAt=iso(created_at))
            )
    period = Period(start=iso(start), end=iso(end))
    reports = {}
    for user, (new, completed, old) in lists.items():
        completed.sort(key=lambda t: (t.createdOrCompletedAt, t.id))
        reports[user] = TaskReport(
            userId=user,
            period=period,
            newIncompleteTasks=new,
            completedTasks=completed,
            oldIncompleteTasks=old,
        )
    return reports


def empty(user_id: str, start: datetime, end: datetime) -> TaskReport:
    return TaskReport(
        userId=user_id,
        period=Period(start=iso(start), end=iso(end)),
        newIncompleteTasks=[],
        completedTasks=[],
        oldIncompleteTasks=[],
    )


def file_name(user_id: str, start: datetime, end: datetime) -> str:
    # The user id is percent-encoded so that no id can name a path outside the directory.
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return (
        f"task_report_{quote(user_id, safe='')}_"
        f"{start.astimezone(UTC).strftime(stamp)}_{end.astimezone(UTC).strftime(stamp)}.json"
    )


def write_files(
    directory: Path, reports: list[TaskReport], start: datetime, end: datetime
) -> list[Path]:
    """Write each report atomically (temporary file in the same directory, fsync, rename), so a
    reader never sees half a file and a re-run replaces a file rather than adding one."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        target = directory / file_name(report.userId, start, end)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(report.model_dump(), f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
