"""Shared fixtures.

* ``backend`` runs a test once per database: SQLite always, PostgreSQL too when
  ``SWITCHBOARD_TEST_DATABASE_URL`` is set or a local PostgreSQL answers (``tests/tiers.py``;
  each test gets its own schema, dropped afterwards). With ``CI=true`` a missing PostgreSQL is an
  error, never a silent skip; otherwise the run ends with a line per tier it left out.
* ``settings`` / ``config`` / ``app`` / ``client``: a migrated database and the app, driven
  black-box through HTTP (httpx over ASGI, with the lifespan running).
* ``asgi_server``: serve any ASGI app on a real loopback port (for outbound-HTTP tests and the
  sandbox).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import create_async_engine

from switchboard.app import create_app
from switchboard.config import Config, HubConfig, Settings
from switchboard.db import Database
from tests import tiers
from tests.support import API_KEY, Backend, make_settings

# Decided at import, before any test module reads the variable (and before pytest-xdist starts
# its workers, which inherit it): the suite's own database on a local PostgreSQL, if one answers.
# An empty SWITCHBOARD_TEST_DATABASE_URL turns the PostgreSQL tier off.
PG_URL = os.environ.get(tiers.ENV)
CREATED_PG_URL: str | None = None
if PG_URL is None and not tiers.is_ci():
    PG_URL = CREATED_PG_URL = tiers.create_local_database()
    if PG_URL:
        os.environ[tiers.ENV] = PG_URL
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


def pytest_configure(config: pytest.Config) -> None:
    if tiers.is_ci() and not PG_URL:
        raise pytest.UsageError(f"CI=true requires {tiers.ENV} (PostgreSQL)")


def pytest_unconfigure(config: pytest.Config) -> None:
    if CREATED_PG_URL and not hasattr(config, "workerinput"):
        tiers.drop_local_database(CREATED_PG_URL)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return
    if CREATED_PG_URL:
        terminalreporter.write_line(f"PostgreSQL tier: on the local server ({CREATED_PG_URL})")
    for gap in tiers.left_out(PG_URL):
        terminalreporter.write_line(
            f"NOT RUN: {gap.tier} tier: {gap.why}. Run it with: {gap.command}", yellow=True
        )


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend(f"sqlite+aiosqlite:///{tmp_path}/test.db", None)
        return
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Backend(PG_URL, schema)
    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await engine.dispose()


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    return make_settings(backend, tmp_path, api_keys=[API_KEY])


@pytest.fixture
def hub_config() -> HubConfig:
    """Override in a test module to configure connections."""
    return HubConfig()


@pytest.fixture
def config(settings: Settings, hub_config: HubConfig) -> Config:
    return Config(settings, hub_config, None)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, schema=settings.database_schema, pool_size=5)
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
def runtime_enabled() -> bool:
    """Whether the app under test runs the background runtime (override per module)."""
    return False


@pytest.fixture
async def app(config: Config, db: Database, runtime_enabled: bool) -> AsyncIterator[Any]:
    application = create_app(config, runtime=runtime_enabled)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub", headers={"X-API-Key": API_KEY}
    ) as c:
        yield c


@pytest.fixture
def asgi_server() -> Iterator[Callable[[Any], str]]:
    """``asgi_server(app) -> base_url``: serve ``app`` on 127.0.0.1 in a thread until teardown."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(application: Any) -> str:
        server = uvicorn.Server(
            uvicorn.Config(application, host="127.0.0.1", port=0, log_config=None, access_log=False)
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
