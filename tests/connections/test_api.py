"""Integrations and connections through the API: create, list, filter, page, change, pause,
delete; ids and aliases everywhere; the file's connections read-only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from switchboard.config import HubConfig
from switchboard.db import Database, utcnow
from switchboard.jobs import queue
from switchboard.models import ConnectionRow, Contact, Credential, Job, Schedule
from tests.support import API_KEY

TOKEN = {"type": "token", "token": "pat-secret-123"}


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "filed": {"kind": "hubspot", "auth": {"type": "token", "token": "pat-1234567"}},
            },
            "users": {"crm_connection": "filed"},
        }
    )


async def integration(client: httpx.AsyncClient, name: str = "hs-app", **extra: Any) -> None:
    body = {
        "name": name,
        "provider": "hubspot",
        "client_id": "cid",
        "client_secret": "csecret",
        "base_url": "http://127.0.0.1:9",
        **extra,
    }
    r = await client.post("/integrations", json=body)
    assert r.status_code == 201, r.text


async def connect(client: httpx.AsyncClient, name: str, **extra: Any) -> str:
    body = {"integration": "hs-app", "name": name, "auth": TOKEN, **extra}
    r = await client.post("/connections", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["alias"] == name
    connection_id: str = r.json()["id"]
    return connection_id


async def test_a_connection_made_through_the_api_answers_by_id_and_alias(
    client: httpx.AsyncClient,
) -> None:
    await integration(client)
    cid = await connect(
        client,
        "acme-co",
        end_user={"id": "u-1", "email": "a@acme.test", "organisation": "Acme"},
        tags=["eu", "trial"],
        settings={"sync_interval": "15m"},
    )
    assert cid.startswith("conn_")
    by_id = (await client.get(f"/connections/{cid}")).json()
    by_alias = (await client.get("/connections/acme-co")).json()
    assert by_id == by_alias
    assert by_id["integration"] == "hs-app" and by_id["kind"] == "hubspot"
    assert by_id["endpoint"] == "http://127.0.0.1:9"  # from the integration
    assert by_id["end_user"] == {"id": "u-1", "email": "a@acme.test", "organisation": "Acme"}
    assert by_id["tags"] == ["eu", "trial"] and by_id["status"] == "ok"
    assert by_id["file_managed"] is False
    assert by_id["settings"]["sync_interval"] == "PT15M"
    assert "pat-secret-123" not in str(by_id) and "csecret" not in str(by_id)
    integrations = (await client.get("/integrations")).json()["items"]
    assert [(i["name"], i["connections"], i["has_client_secret"]) for i in integrations] == [
        ("hs-app", 1, True)
    ]
    assert "csecret" not in str(integrations)


async def test_settings_are_validated_by_the_provider_and_names_are_unique(
    client: httpx.AsyncClient,
) -> None:
    await integration(client)
    r = await client.post(
        "/connections",
        json={"integration": "hs-app", "name": "x", "settings": {"sync_interval": "soon"}},
    )
    assert r.status_code == 422 and "settings.sync_interval" in str(r.json()["detail"])
    r = await client.post("/connections", json={"integration": "nope", "name": "x"})
    assert r.status_code == 422 and "nope" in str(r.json()["detail"])
    r = await client.post("/connections", json={"integration": "hs-app", "name": "Bad Name"})
    assert r.status_code == 422
    await connect(client, "taken")
    r = await client.post("/connections", json={"integration": "hs-app", "name": "taken"})
    assert r.status_code == 409
    r = await client.post("/connections", json={"integration": "hs-app", "name": "filed"})
    assert r.status_code == 409  # the file's connection holds the name
    r = await client.post("/integrations", json={"name": "y", "provider": "salesforce"})
    assert r.status_code == 422 and "salesforce" in str(r.json()["detail"])


async def test_the_files_connections_are_read_only(client: httpx.AsyncClient) -> None:
    r = await client.patch("/connections/filed", json={"tags": ["x"]})
    assert r.status_code == 409 and "connections file" in r.json()["detail"]
    assert (await client.delete("/connections/filed")).status_code == 409
    assert (await client.get("/connections/filed")).json()["tags"] == []


async def test_unknown_connections_are_404_everywhere(client: httpx.AsyncClient) -> None:
    for method, url in (
        ("GET", "/connections/nope"),
        ("PATCH", "/connections/nope"),
        ("DELETE", "/connections/nope"),
        ("GET", "/connections/nope/runs"),
        ("POST", "/connections/nope/sync"),
        ("GET", "/contacts?connection=nope"),
        ("GET", "/changes?connection=nope"),
        ("POST", "/webhooks/nope"),
        ("GET", "/proxy/nope/crm/v3/objects/contacts"),
    ):
        kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        r = await client.request(method, url, **kwargs)
        assert r.status_code == 404, (method, url, r.text)
        assert "nope" in r.json()["detail"]


async def test_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    await integration(client)
    await integration(client, "other-app")
    ids = {}
    for i in range(7):
        ids[i] = await connect(
            client,
            f"c{i}",
            end_user={"id": f"u{i % 2}"},
            tags=["even"] if i % 2 == 0 else ["odd", "x"],
        )
    await client.post(
        "/connections", json={"integration": "other-app", "name": "o1", "auth": TOKEN}
    )
    await client.patch("/connections/c3", json={"status": "paused"})

    async def aliases(**params: Any) -> list[str]:
        r = await client.get("/connections", params=params)
        assert r.status_code == 200, r.text
        return sorted(i["alias"] for i in r.json()["items"])

    assert await aliases(end_user="u1") == ["c1", "c3", "c5"]
    assert await aliases(tag="odd") == ["c1", "c3", "c5"]
    assert await aliases(tag=["odd", "even"]) == []
    assert await aliases(status="paused") == ["c3"]
    assert await aliases(integration="other-app") == ["o1"]
    assert await aliases(integration="hs-app", status="ok", tag="even") == [
        "c0",
        "c2",
        "c4",
        "c6",
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/connections", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 9 and seen == sorted(seen)
    assert (await client.get("/connections", params={"cursor": "%%%"})).status_code == 400
    assert (await client.get("/connections", params={"status": "odd"})).status_code == 422


async def test_patch_renames_retags_pauses_and_swaps_credentials(
    client: httpx.AsyncClient, db: Database
) -> None:
    await integration(client)
    cid = await connect(client, "before")
    r = await client.patch(
        f"/connections/{cid}",
        json={
            "name": "after",
            "tags": ["b"],
            "end_user": {"email": "x@y.test"},
            "auth": {"type": "token", "token": "pat-new-999"},
            "settings": {"sync_interval": "1h"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == cid and r.json()["alias"] == "after"
    assert (await client.get("/connections/before")).status_code == 404
    one = (await client.get("/connections/after")).json()
    assert one["tags"] == ["b"] and one["end_user"]["email"] == "x@y.test"
    assert one["settings"]["sync_interval"] == "PT1H"
    async with db.read_session() as session:
        row = await session.get(ConnectionRow, cid)
        assert row is not None and "pat-new-999" not in row.config  # encrypted at rest
    r = await client.patch("/connections/after", json={"status": "paused"})
    assert r.json()["status"] == "paused"
    assert (await client.post("/connections/after/sync")).status_code == 409
    assert (await client.get("/proxy/after/crm/v3/objects/contacts")).status_code == 409
    r = await client.patch("/connections/after", json={"status": "ok"})
    assert r.json()["status"] == "ok"
    r = await client.patch("/connections/after", json={"settings": {"sync_interval": "never"}})
    assert r.status_code == 422
    assert (await client.get("/connections/after")).json()["settings"]["sync_interval"] == "PT1H"


async def test_delete_cancels_work_erases_credentials_and_deletes_or_keeps_data(
    client: httpx.AsyncClient, db: Database
) -> None:
    await integration(client)
    kept, gone = await connect(client, "kept"), await connect(client, "gone")
    now = utcnow()
    async with db.session() as session:
        for cid in (kept, gone):
            session.add(
                Contact(
                    id=f"hub-{cid}"[:36],
                    connection=cid,
                    external_id="1",
                    email=f"{cid}@x.test",
                    content_hash="h",
                    raw={},
                    created_at=now,
                    updated_at=now,
                    stored_at=now,
                )
            )
            session.add(
                Credential(
                    connection=cid,
                    kind="oauth2",
                    config_fingerprint="f",
                    refresh_token="r",
                    updated_at=now,
                )
            )
            session.add(
                Schedule(
                    name=f"sync:{cid}",
                    kind="syncs.tick",
                    payload={"connection": cid},
                    interval_seconds=300.0,
                    next_run_at=now,
                    updated_at=now,
                )
            )
            await queue.enqueue(session, "syncs.run", {"connection": cid}, key=f"sync:{cid}")
    assert (
        await client.delete("/connections/kept", params={"keep_data": "true"})
    ).status_code == 204
    assert (await client.delete(f"/connections/{gone}")).status_code == 204
    assert (await client.get(f"/connections/{kept}")).status_code == 404
    async with db.read_session() as session:
        for cid in (kept, gone):
            assert await session.get(Credential, cid) is None
            assert await session.get(Schedule, f"sync:{cid}") is None
            jobs = await session.scalar(
                select(func.count()).select_from(Job).where(Job.key == f"sync:{cid}")
            )
            assert jobs == 0
        contacts = (await session.scalars(select(Contact.connection))).all()
        assert contacts == [kept]


async def test_a_user_names_its_crm_connection(client: httpx.AsyncClient, db: Database) -> None:
    await integration(client)
    cid = await connect(client, "their-crm")
    r = await client.patch(
        "/users/u1", json={"email": "u1@example.com", "crmConnection": "their-crm"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["crmConnection"] == cid
    r = await client.patch("/users/u2", json={"email": "u2@example.com"})
    assert r.json()["crmConnection"] == "filed"  # the configured one
    r = await client.patch("/users/u2", json={"email": "u2@example.com", "crmConnection": "nope"})
    assert r.status_code == 422 and "nope" in str(r.json()["detail"])
    r = await client.patch("/users/u1", json={"email": "u1@example.com", "crmConnection": None})
    assert r.json()["crmConnection"] == "filed"


async def test_without_an_api_key_nothing_is_listed(client: httpx.AsyncClient) -> None:
    r = await client.get("/connections", headers={"X-API-Key": API_KEY + "x"})
    assert r.status_code == 401


async def test_connection_changes_are_change_events(client: httpx.AsyncClient) -> None:
    await integration(client)
    cid = await connect(client, "evented", end_user={"id": "u-3"})
    await client.patch(f"/connections/{cid}", json={"tags": ["x"], "status": "paused"})
    await client.delete(f"/connections/{cid}")
    r = await client.get("/changes", params={"type": "connection.*"})
    assert r.status_code == 200, r.text
    events = [(e["type"], e["subject"], e["data"]["changed"]) for e in r.json()["items"]]
    assert events == [
        ("connection.created", f"connection:{cid}", []),
        ("connection.updated", f"connection:{cid}", ["tags", "status"]),
        ("connection.deleted", f"connection:{cid}", []),
    ]
    created = r.json()["items"][0]["data"]["connection"]
    assert created["alias"] == "evented" and created["end_user"]["id"] == "u-3"
    assert "auth" not in str(created) and "pat-secret-123" not in r.text
