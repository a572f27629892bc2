"""Console sessions are revocable: logout ends the session in every process (a replayed cookie
is refused), removing the API key ends its sessions, and expired logins are pruned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from switchboard.app import create_app
from switchboard.config import Config
from switchboard.db import Database
from switchboard.models import ConsoleLogin
from tests.console.helpers import csrf_token, login
from tests.support import make_settings

COOKIE = "switchboard_console"


@asynccontextmanager
async def another_process(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database: what another API process of the cluster sees."""
    app = create_app(config, runtime=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c,
    ):
        yield c


async def page_with(client: httpx.AsyncClient, cookie: str, path: str) -> httpx.Response:
    return await client.get(path, headers={"Cookie": f"{COOKIE}={cookie}"})


async def test_logout_ends_the_session_in_every_process(
    client: httpx.AsyncClient, config: Config
) -> None:
    await login(client)
    cookie = client.cookies[COOKIE]
    async with another_process(config) as other:
        assert (await page_with(other, cookie, "/console/jobs")).status_code == 200
        token = await csrf_token(client)
        r = await client.post("/console/logout", data={"csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
        for c in (client, other):
            client.cookies.clear()
            r = await page_with(c, cookie, "/console/jobs")
            assert r.status_code == 303 and r.headers["location"] == "/console/login"
            # The login form, not a redirect loop back to the pages.
            r = await page_with(c, cookie, "/console/login")
            assert r.status_code == 200 and 'name="api_key"' in r.text
            r = await c.post(
                "/console/connections/nope/sync",
                data={"csrf": token},
                headers={"Cookie": f"{COOKIE}={cookie}"},
            )
            assert r.status_code == 303 and r.headers["location"] == "/console/login"


async def test_logout_ends_only_its_own_session(client: httpx.AsyncClient, app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as second:
        await login(client)
        await login(second)
        r = await client.post("/console/logout", data={"csrf": await csrf_token(client)})
        assert r.status_code == 303
        assert (await second.get("/console/jobs")).status_code == 200


async def test_removing_the_key_ends_its_sessions(
    client: httpx.AsyncClient, config: Config, backend: Any, tmp_path: Any
) -> None:
    await login(client)
    cookie = client.cookies[COOKIE]
    rotated = Config(
        make_settings(backend, tmp_path, api_keys=["another-key-0123456789"]), config.hub, None
    )
    async with another_process(rotated) as other:
        r = await page_with(other, cookie, "/console/jobs")
        assert r.status_code == 303 and r.headers["location"] == "/console/login"


async def test_expired_logins_are_pruned_at_login(client: httpx.AsyncClient, db: Database) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=2)
    async with db.session() as session:
        session.add(
            ConsoleLogin(
                id="0" * 64, created_at=long_ago, expires_at=long_ago + timedelta(hours=12)
            )
        )
    await login(client)
    await login(client)
    async with db.read_session() as session:
        ids = list((await session.scalars(select(ConsoleLogin.id))).all())
        assert "0" * 64 not in ids and len(ids) == 2
    await client.post("/console/logout", data={"csrf": await csrf_token(client)})
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(ConsoleLogin)) == 1
