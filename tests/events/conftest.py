"""Fixtures for the event feed: the sandbox's feed simulator on a real port, a scriptable feed
server for exact bodies, and a hub configured with one ``xml_feed`` connection."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchboard.config import Config, HubConfig, Settings
from switchboard.connectors.xml_feed.simulator import (
    FEED_PATH,
    EventFeedSimulator,
    FeedSettings,
    find_fever_dir,
)
from switchboard.db import Database
from switchboard.events.index import index_for
from switchboard.events.versions import current_version
from switchboard.http import Outbound
from switchboard.sandbox.server import Sandbox
from switchboard.syncs import service as syncs
from switchboard.syncs.registry import SyncResult
from tests.support import API_KEY, Backend, eventually, make_settings, when_free

FEVER_DIR = find_fever_dir()
CONNECTION = "events"


@pytest.fixture(scope="module")
def feed_sandbox() -> Iterator[Sandbox]:
    sandbox = Sandbox("events", fever_dir=FEVER_DIR)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def feed(feed_sandbox: Sandbox) -> EventFeedSimulator:
    """The feed simulator, reset: samples in the current dialect from response 1, reliable."""
    simulator = feed_sandbox.events
    assert simulator is not None
    simulator.configure(**FeedSettings().model_dump())
    simulator.rewind()
    return simulator


@pytest.fixture
def feed_url(feed_sandbox: Sandbox) -> str:
    return feed_sandbox.urls["events"] + FEED_PATH


@pytest.fixture
def hub_config(feed_url: str) -> HubConfig:
    return HubConfig.model_validate(
        {"connections": {CONNECTION: {"kind": "xml_feed", "url": feed_url, "interval": "1h"}}}
    )


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    # One try per fetch: a failing provider fails the run at once (the next poll is the retry).
    return make_settings(backend, tmp_path, api_keys=[API_KEY], http_max_attempts=1)


@pytest.fixture
async def outbound(config: Config, db: Database) -> AsyncIterator[Outbound]:
    out = Outbound(config, db)
    yield out
    await out.aclose()


SyncNow = Callable[..., Any]


@pytest.fixture
def sync_now(config: Config, db: Database, outbound: Outbound) -> SyncNow:
    """``await sync_now()``: one on-demand sync of the feed, as ``switchboard sync`` runs it;
    returns ``(run, result, error)``."""

    async def run(
        name: str = CONNECTION, *, full: bool = False, database: Database | None = None
    ) -> tuple[Any, SyncResult | None, str | None]:
        return await when_free(
            lambda: syncs.run_now(config, database or db, outbound, name, full=full)
        )

    return run


@dataclass
class ScriptedFeed:
    """A provider answering exactly what the test sets, recording the request headers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, status: int, body: bytes, media_type: str = "application/xml") -> None:
        with self.lock:
            self.status, self.body = status, body
            self.headers = {"content-type": media_type}

    def app(self) -> Starlette:
        async def feed(request: Request) -> Response:
            with self.lock:
                self.requests.append(dict(request.headers))
                if self.etag is not None and request.headers.get("if-none-match") == self.etag:
                    return Response(status_code=304, headers={"etag": self.etag})
                headers = dict(self.headers)
                if self.etag is not None:
                    headers["etag"] = self.etag
                return Response(self.body, status_code=self.status, headers=headers)

        return Starlette(routes=[Route(FEED_PATH, feed)])


@pytest.fixture
def scripted(asgi_server: Callable[[Any], str]) -> tuple[ScriptedFeed, str]:
    provider = ScriptedFeed()
    return provider, asgi_server(provider.app()) + FEED_PATH


def sample(dialect: str, number: int) -> bytes:
    return (FEVER_DIR / dialect / f"response_{number}.xml").read_bytes()


async def search(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/search", params=params)


@pytest.fixture
def fresh_search(app: Any, client: httpx.AsyncClient, db: Database) -> Callable[..., Any]:
    """``await fresh_search(**params)``: ``GET /search`` once the app's index has caught up with
    the store (another handle on it, as another process would see it): bounded, never a sleep."""

    async def run(**params: str) -> httpx.Response:
        async with db.read_session() as session:
            wanted = await current_version(session)
        index = index_for(app.state.db)

        async def caught_up() -> bool:
            await search(client)
            return index.version >= wanted

        await eventually(caught_up, timeout=2.0)
        return await search(client, **params)

    return run
