"""Fixtures for outbound change events: the HubSpot simulator and the sandbox's webhook
receiver on real ports (fresh per test), and a hub with its embedded runtime whose retry
schedule is turned down to fractions of a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig, Settings
from switchboard.sandbox import Sandbox, zero_config
from switchboard.sandbox.receiver import Endpoint, WebhookReceiver
from tests.support import API_KEY, Backend, eventually, make_settings, no_scheduled_syncs

SCHEDULE = [0.0, 0.3, 0.6, 0.9]
"""The retry schedule of these tests: four attempts, the waits Svix's in miniature."""


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(only=["hubspot", "receiver"])
    box.start()
    yield box
    box.stop()


@pytest.fixture
def receiver(sandbox: Sandbox) -> WebhookReceiver:
    assert sandbox.receiver is not None
    return sandbox.receiver


@pytest.fixture
def hub_config(sandbox: Sandbox) -> HubConfig:
    return HubConfig.model_validate(no_scheduled_syncs(zero_config(sandbox.urls)))


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend,
        tmp_path,
        api_keys=[API_KEY],
        http_max_attempts=1,
        http_job_max_wait=0,
        events_retry_schedule=SCHEDULE,
        events_timeout=1.0,
    )


@pytest.fixture
def runtime_enabled() -> bool:
    return True


class Subscriber:
    """Subscriptions at the sandbox receiver, made through the API."""

    def __init__(self, client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver):
        self.client = client
        self.base = sandbox.urls["receiver"]
        self.receiver = receiver

    async def subscribe(self, name: str, types: list[str], **extra: Any) -> dict[str, Any]:
        r = await self.client.post(
            "/event-subscriptions",
            json={"url": f"{self.base}/sandbox/receiver/{name}", "event_types": types, **extra},
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        self.receiver.endpoint(name).secret = body["secret"]
        return body

    def endpoint(self, name: str) -> Endpoint:
        return self.receiver.endpoint(name)

    async def received(
        self, name: str, count: int, *, status: int | None = 200, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Wait until ``name`` got ``count`` deliveries answered ``status`` (None: any)."""
        endpoint = self.endpoint(name)

        def matching() -> list[dict[str, Any]]:
            return [
                d.as_dict()
                for d in list(endpoint.deliveries)
                if status is None or d.status == status
            ]

        async def enough() -> bool:
            return len(matching()) >= count

        await eventually(enough, timeout=timeout)
        return matching()


@pytest.fixture
def subscriber(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> Subscriber:
    return Subscriber(client, sandbox, receiver)


async def all_changes(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every event of ``GET /changes``, page by page."""
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await client.get("/changes", params={"after": after, "limit": 100, **params})
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        if not page["items"]:
            return items
        after = page["next_after"]
