"""A worker killed in the middle of a delivery: the event is delivered later by another worker,
at least once, with the same ``webhook-id``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from switchboard.sandbox import Sandbox
from tests.changes.conftest import Subscriber
from tests.support import Backend, Process, eventually, switchboard_env


@pytest.fixture
def runtime_enabled() -> bool:
    return False  # the worker subprocesses are the only workers


def write_config(tmp_path: Path, sandbox: Sandbox) -> None:
    (tmp_path / "switchboard.toml").write_text(
        "[connections.hubspot]\n"
        'kind = "hubspot"\n'
        f'base_url = "{sandbox.urls["hubspot"]}"\n'
        'auth = { type = "token", token = "pat-sandbox" }\n'
        "[contacts]\n"
        'default_connection = "hubspot"\n'
    )


async def test_worker_killed_mid_delivery_delivers_later_with_the_same_id(
    client: httpx.AsyncClient,
    subscriber: Subscriber,
    sandbox: Sandbox,
    backend: Backend,
    tmp_path: Path,
) -> None:
    write_config(tmp_path, sandbox)
    env = switchboard_env(
        backend,
        tmp_path,
        SWITCHBOARD_JOB_LEASE_SECONDS="1.5",
        SWITCHBOARD_EVENTS_RETRY_SCHEDULE="0,0.2,0.2,0.2",
        SWITCHBOARD_EVENTS_TIMEOUT="60",
    )
    await subscriber.subscribe("k", ["contact.created"])
    endpoint = subscriber.endpoint("k")
    endpoint.mode, endpoint.times, endpoint.delay_ms = "timeout", 1, 60_000  # the first hangs
    first = Process(["worker"], env, tmp_path, tmp_path / "w1.log")
    second = None
    try:
        r = await client.post("/contacts", json={"email": "killed@example.com"})
        assert r.status_code == 201, r.text
        [hanging] = await subscriber.received("k", 1, timeout=30)
        first.kill()
        second = Process(["worker"], env, tmp_path, tmp_path / "w2.log")
        delivered = await subscriber.received("k", 2, timeout=30)
        assert {d["webhook_id"] for d in delivered} == {hanging["webhook_id"]}
        assert delivered[-1]["verified"] is True

        async def recorded() -> bool:
            items = (await client.get("/event-subscriptions")).json()["items"]
            attempts = (await client.get(f"/event-subscriptions/{items[0]['id']}/attempts")).json()[
                "items"
            ]
            return any(a["outcome"] == "succeeded" for a in attempts)

        await eventually(recorded, timeout=30)
    finally:
        first.stop()
        if second is not None:
            second.stop()
