"""A HubSpot webhook about a custom property reaches the store: the refresh job's read asks for
the connection's custom properties too."""

from __future__ import annotations

import httpx
import pytest

from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from tests.contacts.conftest import SyncNow, all_contacts
from tests.contacts.test_custom_fields import hub_config  # noqa: F401 - title, stage
from tests.support import eventually


@pytest.fixture
def runtime_enabled() -> bool:
    return True


async def test_a_custom_property_change_arrives_through_a_webhook(
    hubspot: HubSpotSimulator, hub_url: str, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(3)
    await sync_now()
    hubspot.webhooks.configure(url=hub_url + "/webhooks/hubspot")
    hubspot.ui_update(2, {"lifecyclestage": "customer"})

    async def arrived() -> bool:
        items = await all_contacts(client, **{"fields.stage": "customer"})
        return [i["externalId"] for i in items] == ["2"]

    await eventually(arrived, timeout=15)
