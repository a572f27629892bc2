from __future__ import annotations

import httpx
import pytest

from switchboard.config import HubConfig


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "hubspot": {"kind": "hubspot", "auth": {"type": "token", "token": "pat-1234567"}},
                "events": {"kind": "xml_feed", "url": "http://127.0.0.1:9/feed"},
            }
        }
    )


async def test_lists_connections_without_secrets(client: httpx.AsyncClient) -> None:
    r = await client.get("/connections")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["name"], i["kind"]) for i in items] == [
        ("events", "xml_feed"),
        ("hubspot", "hubspot"),
    ]
    assert "pat-1234567" not in r.text
    one = (await client.get("/connections/hubspot")).json()
    one.pop("sync")  # the sync status has its own test
    assert one.pop("created_at") and one.pop("updated_at")
    settings = one.pop("settings")
    assert settings["auth"]["token"] == "**********" and settings["base_url"] == one["endpoint"]
    assert one == {
        "id": "hubspot",
        "alias": "hubspot",
        "name": "hubspot",
        "kind": "hubspot",
        "integration": None,
        "account": None,
        "end_user": {"id": None, "email": None, "organisation": None},
        "tags": [],
        "status": "ok",
        "status_reason": None,
        "file_managed": True,
        "endpoint": "https://api.hubapi.com",
        "auth": "token",
        "outbound": {
            "breaker": "closed",
            "consecutive_failures": 0,
            "budgets": {},
            "credentials": {"type": "token", "state": "ok", "detail": None, "expires_at": None},
        },
    }
    assert "pat-1234567" not in (await client.get("/connections/hubspot")).text


async def test_unknown_connection_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/connections/nope")
    assert r.status_code == 404
    assert r.json() == {"detail": "No connection named 'nope'"}


async def test_a_feed_shows_its_sync_status(client: httpx.AsyncClient) -> None:
    sync = (await client.get("/connections/events")).json()["sync"]
    assert sync["last_run"] is None and sync["plans_stored"] == 0
