"""Task reports: the categories and their boundaries, on demand and on a schedule."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from switchboard.cli import app as cli
from switchboard.config import Config, HubConfig, Settings
from switchboard.db import Database, utcnow
from switchboard.errors import RetryLater
from switchboard.jobs.registry import JobContext
from switchboard.jobs.schedules import align
from switchboard.models import ReportCursor
from switchboard.reports import service
from switchboard.reports import tasks as report_job
from tests.support import Backend, eventually

START = "2025-04-01T00:00:00Z"
END = "2025-04-02T00:00:00Z"


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return tmp_path / "reports"


@pytest.fixture
def hub_config(report_dir: Path) -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {"todo": {"kind": "todo_webhooks"}},
            "reports": {"interval": "1s", "dir": str(report_dir), "settle": "0s"},
        }
    )


async def send(
    client: httpx.AsyncClient, kind: str, task: str, ts: str, user: str = "1", **md: Any
) -> int:
    body = {
        "event": kind,
        "timestamp": ts,
        "metadata": {
            "userId": user,
            "id": task,
            "content": f"task {task}",
            "isCompleted": False,
            **md,
        },
    }
    return (await client.post("/webhooks/todo", json=body)).status_code


async def report(
    client: httpx.AsyncClient, user: str = "1", start: str = START, end: str = END
) -> dict[str, Any]:
    r = await client.get("/reports/tasks", params={"userId": user, "start": start, "end": end})
    assert r.status_code == 200, r.text
    return r.json()


def ids(rep: dict[str, Any], key: str) -> list[str]:
    return [t["id"] for t in rep[key]]


async def test_categories_and_boundaries(client: httpx.AsyncClient) -> None:
    # created exactly at start: "at or before start" -> old
    await send(client, "created", "at-start", START)
    # created exactly at end: inside (start, end] -> new
    await send(client, "created", "at-end", END)
    # created one microsecond after end: in no list
    await send(client, "created", "after-end", "2025-04-02T00:00:00.000001Z")
    # created before, completed exactly at end -> completed
    await send(client, "created", "done-at-end", "2025-03-01T00:00:00Z")
    await send(client, "updated", "done-at-end", END, isCompleted=True)
    # completed exactly at start -> done before the window: no list
    await send(client, "created", "done-at-start", "2025-03-01T00:00:00Z")
    await send(client, "updated", "done-at-start", START, isCompleted=True)
    # created and completed inside the window -> completed only
    await send(client, "created", "in-and-done", "2025-04-01T08:00:00Z")
    await send(client, "updated", "in-and-done", "2025-04-01T09:00:00Z", isCompleted=True)
    # completed after the window -> still open as of end -> old
    await send(client, "created", "done-later", "2025-03-15T00:00:00Z")
    await send(client, "updated", "done-later", "2025-04-03T00:00:00Z", isCompleted=True)

    rep = await report(client)
    assert rep["userId"] == "1"
    assert rep["period"] == {"start": START, "end": END}
    assert ids(rep, "oldIncompleteTasks") == ["done-later", "at-start"]
    assert ids(rep, "newIncompleteTasks") == ["at-end"]
    assert ids(rep, "completedTasks") == ["in-and-done", "done-at-end"]
    done = {t["id"]: t["createdOrCompletedAt"] for t in rep["completedTasks"]}
    assert done == {"in-and-done": "2025-04-01T09:00:00Z", "done-at-end": END}
    assert rep["newIncompleteTasks"][0] == {
        "id": "at-end",
        "content": "task at-end",
        "createdOrCompletedAt": END,
    }


async def test_completed_then_deleted(client: httpx.AsyncClient) -> None:
    await send(client, "created", "a", "2025-04-01T01:00:00Z")
    await send(client, "updated", "a", "2025-04-01T02:00:00Z", isCompleted=True)
    await send(client, "deleted", "a", "2025-04-01T03:00:00Z")
    await send(client, "created", "b", "2025-04-01T01:00:00Z")
    await send(client, "updated", "b", "2025-04-01T02:00:00Z", isCompleted=True)
    await send(client, "deleted", "b", "2025-04-05T00:00:00Z")  # deleted after the window
    rep = await report(client)
    assert ids(rep, "completedTasks") == ["b"]  # a was deleted by end: in no list
    assert ids(rep, "newIncompleteTasks") == ids(rep, "oldIncompleteTasks") == []


async def test_past_windows_are_reproducible_and_backdated_events_count(
    client: httpx.AsyncClient,
) -> None:
    await send(client, "created", "t", "2025-03-01T00:00:00Z")
    before = await report(client)
    assert ids(before, "oldIncompleteTasks") == ["t"]
    # Events that arrive now, stamped after the window, do not change it...
    await send(client, "updated", "t", "2025-05-01T00:00:00Z", isCompleted=True)
    assert await report(client) == before
    # ...but a backdated event (stamped inside the window) does.
    await send(client, "created", "late", "2025-04-01T12:00:00Z")
    assert ids(await report(client), "newIncompleteTasks") == ["late"]


async def test_naive_timestamps_are_utc(client: httpx.AsyncClient) -> None:
    await send(client, "created", "n", "2025-04-01T23:30:00")  # UTC: inside the window
    await send(client, "created", "o", "2025-04-01T23:30:00-02:00")  # 01:30Z next day: outside
    rep = await report(client, start="2025-04-01T00:00:00", end="2025-04-02T00:00:00")
    assert ids(rep, "newIncompleteTasks") == ["n"]
    assert rep["period"] == {"start": START, "end": END}


async def test_user_with_nothing_gets_empty_lists(client: httpx.AsyncClient) -> None:
    rep = await report(client, user="ghost")
    assert rep["newIncompleteTasks"] == rep["completedTasks"] == rep["oldIncompleteTasks"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"userId": "1", "start": "x", "end": END}, "start"),
        ({"userId": "1", "start": END, "end": START}, "end"),
        ({"start": START, "end": END}, "userId"),
    ],
)
async def test_bad_report_queries_are_422(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    r = await client.get("/reports/tasks", params=params)
    assert r.status_code == 422
    assert ["query", field] in [e["loc"] for e in r.json()["detail"]]


def test_file_names_are_safe() -> None:
    start = datetime(2025, 4, 1, tzinfo=UTC)
    name = service.file_name("../etc/passwd", start, start + timedelta(minutes=1))
    assert name == "task_report_..%2Fetc%2Fpasswd_2025-04-01T00:00:00Z_2025-04-01T00:01:00Z.json"
    assert "/" not in name


# --- the schedule --------------------------------------------------------------------------


async def run_job(config: Config, db: Database) -> None:
    """Run the scheduled report as the worker would (RetryLater means 'come back later')."""
    ctx = JobContext(
        id=0, kind=report_job.KIND, key=None, payload={}, attempt=1, db=db, config=config
    )
    with contextlib.suppress(RetryLater):
        await report_job.run_scheduled(ctx)


def by_window(names: list[str]) -> dict[datetime, list[str]]:
    """File names grouped by window start (names end in _{start}_{end}.json)."""
    grouped: dict[datetime, list[str]] = {}
    for name in names:
        start = datetime.strptime(name.rsplit("_", 2)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        grouped.setdefault(start, []).append(name)
    return dict(sorted(grouped.items()))


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def set_cursor(db: Database, at: datetime) -> None:
    async with db.session() as session:
        await session.execute(update(ReportCursor).values(window_end=at))


async def seed_tasks(client: httpx.AsyncClient, at: datetime, users: int) -> None:
    for u in range(users):
        ts = at.isoformat()
        assert await send(client, "created", f"t{u}", ts, user=str(u)) == 202


async def test_scheduled_windows_have_no_gap_and_no_duplicate(
    client: httpx.AsyncClient, config: Config, db: Database, report_dir: Path
) -> None:
    await run_job(config, db)  # first run: the cursor starts at the current boundary
    assert files(report_dir) == []
    now = utcnow()
    first = align(now, timedelta(seconds=1)) - timedelta(seconds=5)
    await set_cursor(db, first)  # as if the hub had been down for five windows
    await seed_tasks(client, first + timedelta(milliseconds=1500), users=2)  # in window 2

    # A crash after writing window 1's files but before moving the cursor: simulate by writing
    # them, then running the job, which redoes window 1 under the same names.
    await report_job.write_window(db, report_dir, first, first + timedelta(seconds=1))
    await run_job(config, db)

    names = files(report_dir)
    assert not [n for n in names if n.startswith(".tmp")]
    windows = by_window(names)
    # Window 1 has nothing; every later window up to now has both users' task ("new" in
    # window 2, "old" after it): no gap, and one file per user per window.
    second = first + timedelta(seconds=1)
    assert list(windows) == [second + timedelta(seconds=i) for i in range(len(windows))]
    assert len(windows) >= 4
    assert all(len(group) == 2 for group in windows.values())
    async with db.read_session() as session:
        cursor = await session.scalar(select(ReportCursor.window_end))
    assert (
        cursor is not None and cursor == align(utcnow(), timedelta(seconds=1))
    ) or cursor == align(now, timedelta(seconds=1))
    for n in names:
        body = json.loads((report_dir / n).read_text())
        assert body["userId"] in ("0", "1")


async def test_two_instances_write_each_window_once(
    client: httpx.AsyncClient, config: Config, settings: Settings, db: Database, report_dir: Path
) -> None:
    await run_job(config, db)
    first = align(utcnow(), timedelta(seconds=1)) - timedelta(seconds=6)
    await set_cursor(db, first)
    await seed_tasks(client, first - timedelta(seconds=1), users=3)
    other_db = Database(settings.database_url, schema=settings.database_schema, pool_size=2)
    try:
        await asyncio.gather(*(run_job(config, d) for d in (db, other_db, db, other_db)))
    finally:
        await other_db.dispose()
    windows = by_window(files(report_dir))
    # Every window from the cursor on, each with one file for each of the 3 users.
    assert list(windows) == [first + timedelta(seconds=i) for i in range(len(windows))]
    assert len(windows) >= 6
    assert all(len(group) == 3 for group in windows.values())


async def test_runtime_writes_reports_on_schedule(
    backend: Backend, tmp_path: Path, report_dir: Path, hub_config: HubConfig, db: Database
) -> None:
    from switchboard.app import create_app
    from tests.support import API_KEY, make_settings

    settings = make_settings(backend, tmp_path, api_keys=[API_KEY])
    app = create_app(Config(settings, hub_config, None), runtime=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c,
    ):
        assert await send(c, "created", "x", (utcnow() - timedelta(hours=1)).isoformat()) == 202

        async def written() -> bool:
            return bool(files(report_dir))

        await eventually(written, timeout=20)
    [name] = files(report_dir)[:1]
    assert name.startswith("task_report_1_")


def test_cli_writes_a_report(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in backend.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "json")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    out = runner.invoke(
        cli,
        [
            "report",
            "tasks",
            "--start",
            START,
            "--end",
            END,
            "--user",
            "7",
            "--dir",
            str(tmp_path / "out"),
        ],
    )
    assert out.exit_code == 0, out.output
    [path] = out.output.split()
    body = json.loads(Path(path).read_text())
    assert body["userId"] == "7" and body["completedTasks"] == []
    bad = runner.invoke(cli, ["report", "tasks", "--start", END, "--end", START])
    assert bad.exit_code == 1 and "--end must be after --start" in bad.output
