"""The request middleware's Host check: a Host the server does not answer to (DNS rebinding) is a
400 with a JSON error, before any route runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from switchboard.app import create_app
from switchboard.config import Config, HubConfig, Settings
from switchboard.db import Database
from tests.support import API_KEY, Backend, make_settings

LOOPBACK = ["localhost", "localhost:8000", "LocalHost.", "127.0.0.1", "127.0.0.1:1", "[::1]:8000"]
FOREIGN: list[str | bytes] = [
    "evil.example",
    "evil.example:8000",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "hub",
    "::1",  # an IPv6 literal needs brackets
    "[",
    "[::1",
    ":8000",
    "",
    b"\xe9vil.example",
    "x" * 5000,
]
PATHS = ["/health", "/connections", "/console/connections", "/docs", "/nowhere"]


@asynccontextmanager
async def hub(
    backend: Backend, tmp_path: Any, db: Database, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the test database (migrated by ``db``) with these settings."""
    config = Config(make_settings(backend, tmp_path, **overrides), HubConfig(), None)
    app = create_app(config, runtime=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c,
    ):
        yield c


def assert_refused(r: httpx.Response, what: object) -> None:
    assert r.status_code == 400, (what, r.status_code, r.text[:200])
    assert r.headers["content-type"] == "application/json"
    assert "SWITCHBOARD_ALLOWED_HOSTS" in r.json()["detail"]


async def test_without_an_api_key_only_loopback_names_are_served(
    backend: Backend, tmp_path: Any, db: Database
) -> None:
    async with hub(backend, tmp_path, db, api_keys=[]) as client:
        for host in LOOPBACK:
            for path in PATHS:
                r = await client.get(path, headers={"Host": host})
                assert r.status_code in (200, 303, 404), (host, path, r.status_code)
                assert r.status_code != 404 or path == "/nowhere"
        for bad in FOREIGN:
            for path in PATHS:
                assert_refused(await client.get(path, headers={"Host": bad}), (bad, path))
            r = await client.post("/webhooks/todo", json={}, headers={"Host": bad})
            assert_refused(r, bad)


async def test_with_an_api_key_any_host_is_served(
    backend: Backend, tmp_path: Any, db: Database
) -> None:
    async with hub(backend, tmp_path, db, api_keys=[API_KEY]) as client:
        for host in [*LOOPBACK, "evil.example", "hub.example.com:443"]:
            r = await client.get("/connections", headers={"Host": host, "X-API-Key": API_KEY})
            assert r.status_code == 200, host


async def test_allowed_hosts_setting_restricts_or_opens(
    backend: Backend, tmp_path: Any, db: Database
) -> None:
    allowed = ["hub.example.com", "*.corp.example"]
    async with hub(backend, tmp_path, db, api_keys=[API_KEY], allowed_hosts=allowed) as client:
        for host in (
            "hub.example.com",
            "HUB.example.com:8443",
            "a.corp.example",
            "b.a.corp.example",
        ):
            assert (await client.get("/health", headers={"Host": host})).status_code == 200, host
        for bad in ("corp.example", "evil.example", "localhost", "xcorp.example", "[::1]"):
            assert_refused(await client.get("/health", headers={"Host": bad}), bad)
    # "*" opens an API without keys to any name (e.g. behind a proxy that checks the host).
    async with hub(backend, tmp_path, db, api_keys=[], allowed_hosts=["*"]) as client:
        r = await client.get("/connections", headers={"Host": "evil.example"})
        assert r.status_code == 200


def test_allowed_hosts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_ALLOWED_HOSTS", " hub.example.com, *.corp.example ,")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.allowed_hosts == ["hub.example.com", "*.corp.example"]
    assert Config(settings, HubConfig(), None).allowed_hosts == (
        "hub.example.com",
        "*.corp.example",
    )
