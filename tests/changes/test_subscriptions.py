"""``/event-subscriptions``: CRUD, URLs refused for SSRF, and the disable after failing for
``SWITCHBOARD_EVENTS_DISABLE_AFTER`` (5 days by default; a second here)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from switchboard.config import HubConfig, Settings
from switchboard.sandbox import Sandbox, zero_config
from tests.changes.conftest import SCHEDULE, Subscriber
from tests.support import API_KEY, Backend, eventually, make_settings

REFUSED = [
    "http://127.0.0.1:9/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "not a url",
]


@pytest.fixture
def runtime_enabled() -> bool:
    return False


@pytest.mark.parametrize("url", REFUSED)
async def test_private_and_non_http_urls_are_refused(client: httpx.AsyncClient, url: str) -> None:
    r = await client.post("/event-subscriptions", json={"url": url, "event_types": ["*"]})
    assert r.status_code == 422, r.text
    assert (await client.get("/event-subscriptions")).json()["items"] == []


async def test_a_patch_to_a_private_url_is_refused(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("p", ["contact.*"])
    r = await client.patch(f"/event-subscriptions/{sub['id']}", json={"url": "http://10.0.0.1/x"})
    assert r.status_code == 422
    assert (await client.get(f"/event-subscriptions/{sub['id']}")).json()["url"] == sub["url"]


async def test_crud(client: httpx.AsyncClient, subscriber: Subscriber) -> None:
    sub = await subscriber.subscribe("c", ["contact.*", "task.created"], description="CRM")
    assert sub["enabled"] is True and sub["event_types"] == ["contact.*", "task.created"]
    r = await client.patch(
        f"/event-subscriptions/{sub['id']}", json={"enabled": False, "event_types": ["*"]}
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert r.json()["event_types"] == ["*"] and r.json()["secret"] is None
    bad = await client.post(
        "/event-subscriptions", json={"url": sub["url"], "event_types": ["nothing.here"]}
    )
    assert bad.status_code == 422
    unknown = await client.post(
        "/event-subscriptions",
        json={"url": sub["url"], "event_types": ["*"], "connection": "nope"},
    )
    assert unknown.status_code == 422
    assert (await client.delete(f"/event-subscriptions/{sub['id']}")).status_code == 204
    assert (await client.get(f"/event-subscriptions/{sub['id']}")).status_code == 404


class TestAllowedByConfig:
    @pytest.fixture
    def hub_config(self, sandbox: Sandbox) -> HubConfig:
        data = zero_config(sandbox.urls)
        data["events"] = {"allow_private_urls": True}
        return HubConfig.model_validate(data)

    async def test_private_urls_are_accepted(self, client: httpx.AsyncClient) -> None:
        r = await client.post(
            "/event-subscriptions", json={"url": "http://10.1.2.3/hook", "event_types": ["*"]}
        )
        assert r.status_code == 201, r.text
        ftp = await client.post(
            "/event-subscriptions", json={"url": "ftp://10.1.2.3/", "event_types": ["*"]}
        )
        assert ftp.status_code == 422  # still http(s) only


class TestDisabledAfterFailingForLong:
    @pytest.fixture
    def settings(self, backend: Backend, tmp_path: Path) -> Settings:
        return make_settings(
            backend,
            tmp_path,
            api_keys=[API_KEY],
            events_retry_schedule=SCHEDULE,
            events_timeout=1.0,
            events_disable_after=1.0,
        )

    @pytest.fixture
    def runtime_enabled(self) -> bool:
        return True

    async def test_a_subscription_failing_past_the_bound_is_disabled(
        self, client: httpx.AsyncClient, subscriber: Subscriber
    ) -> None:
        sub = await subscriber.subscribe("flaky", ["contact.*"])
        subscriber.endpoint("flaky").mode = "fail"
        r = await client.post("/contacts", json={"email": "flaky@example.com"})
        assert r.status_code == 201

        async def disabled() -> bool:
            state = (await client.get(f"/event-subscriptions/{sub['id']}")).json()
            return state["enabled"] is False

        await eventually(disabled, timeout=15)
        state = (await client.get(f"/event-subscriptions/{sub['id']}")).json()
        assert "failed since" in state["disabled_reason"]
        changes = (await client.get("/changes", params={"type": "event_subscription.*"})).json()
        assert [e["data"]["subscription"]["id"] for e in changes["items"]] == [sub["id"]]
        # Failing for 1 s (attempts at 0, 0.3, 0.9 s...) took more than one attempt.
        assert len(subscriber.endpoint("flaky").deliveries) >= 2
