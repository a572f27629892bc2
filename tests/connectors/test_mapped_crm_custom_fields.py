"""Custom fields of a declarative CRM: the People connection of ``people_crm.toml`` with its
organisation's name (a nested path) mapped as the custom field ``org`` instead of ``company``.
A sync reads it, the list filters on it, and writes reach the simulator's nested record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig, Settings, load_config
from switchboard.connectors.mapped_crm.simulators import people as people_mod
from switchboard.connectors.mapped_crm.simulators.people import PeopleSimulator
from tests.connectors.test_people_crm import (  # noqa: F401 - fixtures
    TOML,
    outbound,
    people,
    people_url,
    settings,
    sync_now,
)
from tests.contacts.conftest import SyncNow, all_contacts


@pytest.fixture
def hub_config(settings: Settings, people_url: str, tmp_path: Path) -> HubConfig:  # noqa: F811
    text = TOML.read_text()
    assert 'company = "org.name"\n' in text
    text = text.replace('company = "org.name"\n', "")
    text += '\n[connections.people.custom_fields]\norg = "org.name"\n'
    path = tmp_path / "people_custom.toml"
    path.write_text(text)
    env = {
        "PEOPLE_URL": people_url,
        "PEOPLE_API_KEY": people_mod.API_KEY,
        "PEOPLE_WEBHOOK_SECRET": people_mod.WEBHOOK_SECRET,
    }
    return load_config(settings.model_copy(update={"config": path}), env=env).hub


def _person(i: int, org: str | None) -> dict[str, Any]:
    person: dict[str, Any] = {
        "name": {"first": f"F{i}", "last": "L"},
        "emails": [{"value": f"p{i}@example.com", "primary": True}],
    }
    if org is not None:
        person["org"] = {"name": org}
    return person


async def test_a_sync_reads_the_custom_field_and_the_list_filters_on_it(
    people: PeopleSimulator,  # noqa: F811
    sync_now: SyncNow,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    uids = [people.create(_person(i, org))["uid"] for i, org in enumerate(["Gold", "Tin", None])]
    _, _, error = await sync_now(full=True)
    assert error is None, error
    items = {i["externalId"]: i for i in await all_contacts(client, connection="people")}
    assert [items[u]["fields"] for u in uids] == [{"org": "Gold"}, {"org": "Tin"}, {"org": None}]
    assert items[uids[0]]["company"] is None  # mapped as the custom field only
    gold = await all_contacts(client, connection="people", **{"fields.org": "Gold"})
    assert [i["externalId"] for i in gold] == [uids[0]]

    people.update(uids[1], {"org": {"name": "Gold"}})
    _, _, error = await sync_now()
    assert error is None, error
    gold = await all_contacts(client, **{"fields.org": "Gold"})
    assert sorted(i["externalId"] for i in gold) == sorted(uids[:2])


async def test_writes_reach_the_nested_path_and_unknown_fields_are_422(
    people: PeopleSimulator,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/contacts",
        json={"email": "ada@example.com", "connection": "people", "fields": {"org": "Engines"}},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    uid = body["externalId"]
    assert body["fields"] == {"org": "Engines"}
    assert people.people[uid]["org"] == {"name": "Engines"}

    patched = await client.patch(f"/contacts/{body['id']}", json={"fields": {"org": "Looms"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["fields"] == {"org": "Looms"}
    assert people.people[uid]["org"] == {"name": "Looms"}

    cleared = await client.patch(f"/contacts/{body['id']}", json={"fields": {"org": None}})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["fields"] == {"org": None}
    assert (people.people[uid].get("org") or {}).get("name") is None

    unknown = await client.patch(f"/contacts/{body['id']}", json={"fields": {"tier": "x"}})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "fields", "tier"]
    # company is not mapped on this connection: refused under its own name.
    unknown = await client.patch(f"/contacts/{body['id']}", json={"company": "x"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "company"]
