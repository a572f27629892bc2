"""The connections file's connections in the database: stored at start (idempotent), an entry
renamed with its ``id`` kept is the same connection, one removed from the file is paused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from switchboard.config import ConfigError, Settings, load_config
from switchboard.connections import store, versions
from switchboard.connections.schemas import ConnectionCreate, IntegrationIn
from switchboard.connections.service import create, put_integration
from switchboard.credentials import SecretBox, load_secret_box
from switchboard.db import Database
from switchboard.errors import Conflict
from switchboard.events.versions import current_version
from switchboard.models import ConnectionRow


def write(settings: Settings, text: str) -> Settings:
    settings.config.write_text(text)
    return settings


async def version(db: Database) -> int:
    async with db.read_session() as session:
        return await current_version(session, versions.STORE)


async def rows(db: Database) -> dict[str, ConnectionRow]:
    async with db.read_session() as session:
        return {r.id: r for r in (await session.scalars(select(ConnectionRow))).all()}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"config": tmp_path / "switchboard.toml"})


FILE = """
[connections.crm]
kind = "hubspot"
auth = { type = "token", token = "${TOKEN:-pat-1}" }
tags = ["main"]
end_user = { id = "ops" }
"""


async def test_storing_the_file_twice_changes_nothing(settings: Settings, db: Database) -> None:
    config = load_config(write(settings, FILE), env={})
    await store.attach(config, db)
    first = await version(db)
    stored = await rows(db)
    assert list(stored) == ["crm"] and stored["crm"].file_managed
    assert stored["crm"].tags == ["main"] and stored["crm"].end_user_id == "ops"
    assert "pat-1" not in stored["crm"].config  # encrypted
    again = load_config(settings, env={})
    await store.attach(again, db)
    assert await version(db) == first
    entry = again.catalog.resolve("crm")
    assert entry is not None and entry.file_managed and entry.tags == ("main",)
    # A changed value (here a token from the environment) is stored again, once.
    changed = load_config(settings, env={"TOKEN": "pat-2"})
    await store.attach(changed, db)
    assert await version(db) == first + 1
    box = load_secret_box(settings)
    assert store.unseal(box, (await rows(db))["crm"].config)["auth"]["token"] == "pat-2"


async def test_a_renamed_entry_keeping_its_id_is_the_same_connection(
    settings: Settings, db: Database
) -> None:
    await store.attach(load_config(write(settings, FILE), env={}), db)
    renamed = FILE.replace("[connections.crm]", '[connections.hubspot-eu]\nid = "crm"')
    config = load_config(write(settings, renamed), env={})
    await store.attach(config, db)
    stored = await rows(db)
    assert list(stored) == ["crm"] and stored["crm"].alias == "hubspot-eu"
    entry = config.entry("hubspot-eu")
    assert entry is not None and entry.id == "crm" and config.entry("crm") is entry


async def test_an_entry_gone_from_the_file_is_paused_not_deleted(
    settings: Settings, db: Database
) -> None:
    await store.attach(load_config(write(settings, FILE), env={}), db)
    other = FILE.replace("[connections.crm]", "[connections.other]")
    config = load_config(write(settings, other), env={})
    await store.attach(config, db)
    stored = await rows(db)
    assert stored["crm"].status == "paused" and stored["crm"].status_reason == (
        store.REMOVED_FROM_FILE
    )
    assert stored["other"].status == "ok"
    crm = config.catalog.get("crm")
    assert crm is not None and not crm.active
    assert "sync:crm" not in {s.name for s in _schedules(config)}
    # Back in the file: active again.
    config = load_config(write(settings, FILE + other), env={})
    await store.attach(config, db)
    assert (await rows(db))["crm"].status == "ok"


def _schedules(config: object) -> list[object]:
    from switchboard.syncs.service import schedules

    return list(schedules(config))  # type: ignore[arg-type]


def test_registration_keys_are_checked(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"connections\.crm\.id"):
        load_config(write(settings, FILE + 'id = "Not Valid"\n'), env={})
    two = FILE + FILE.replace("[connections.crm]", '[connections.b]\nid = "crm"')
    with pytest.raises(ConfigError, match="same id"):
        load_config(write(settings, two), env={})
    with pytest.raises(ConfigError, match="no integration named 'x'"):
        load_config(write(settings, FILE + 'integration = "x"\n'), env={})


async def test_a_replaced_secret_key_leaves_out_what_it_cannot_read_and_loads_the_rest(
    settings: Settings, db: Database
) -> None:
    """Stored under another key, an integration and a connection cannot be decrypted: each is
    left out (and logged), the process still starts with the file's connections."""
    old = SecretBox("the key that was lost")
    async with db.session() as session:
        await put_integration(
            session, old, IntegrationIn(name="app", provider="hubspot", client_secret="s")
        )
        await create(
            session,
            old,
            ConnectionCreate(
                integration="app", name="theirs", auth={"type": "token", "token": "pat-2"}
            ),
        )
    config = load_config(write(settings, FILE), env={})
    assert await store.attach(config, db)  # no SecretKeyError: the start goes on
    assert [e.alias for e in config.catalog.entries()] == ["crm"]
    assert "app" not in config.catalog.integrations
    # A connection made on it now is refused with a 409 naming why, not a 500.
    with pytest.raises(Conflict, match="cannot be decrypted"):
        async with db.session() as session:
            await create(
                session,
                load_secret_box(settings),
                ConnectionCreate(
                    integration="app", name="new", auth={"type": "token", "token": "x"}
                ),
            )
