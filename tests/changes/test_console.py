"""The console's events page: deliveries per subscription, a disabled subscription's notice,
the success chart, and the resend button."""

from __future__ import annotations

import httpx

from tests.changes.conftest import Subscriber
from tests.console.helpers import csrf_of, login
from tests.support import eventually


async def test_the_events_page_shows_deliveries_and_resends(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("console", ["contact.*"], description="Product")
    gone = await subscriber.subscribe("gone", ["contact.*"])
    subscriber.endpoint("gone").mode = "410"
    assert (await client.post("/contacts", json={"email": "c@example.com"})).status_code == 201
    [got] = await subscriber.received("console", 1)
    await subscriber.received("gone", 1, status=410)
    await login(client)

    async def page() -> httpx.Response:
        return await client.get("/console/events")

    async def shown() -> bool:
        text = (await page()).text
        return got["id"] in text and "410 Gone" in text

    await eventually(shown)
    r = await page()
    assert r.status_code == 200
    assert "Product" in r.text and "<svg" in r.text
    assert f"subscription-{gone['id']}" in r.text and "Disabled:" in r.text
    resend = await client.post(
        f"/console/events/{got['id']}/resend",
        data={"csrf": csrf_of(r), "subscription": sub["id"]},
        follow_redirects=False,
    )
    assert resend.status_code == 303, resend.text
    _, again = await subscriber.received("console", 2)
    assert again["webhook_id"] == got["webhook_id"]
