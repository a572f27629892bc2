"""Feed bodies over the size caps (as sent, and decoded: gzip bombs): provider failures that
change nothing."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from switchboard.config import HubConfig, Settings
from switchboard.db import Database
from switchboard.models import EventPlanStaging
from tests.events.conftest import CONNECTION, ScriptedFeed, SyncNow, sample
from tests.events.test_feed_failures import snapshot
from tests.events.test_feed_limits import sample_value
from tests.support import API_KEY, Backend, make_settings

CAP = 64 * 1024


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    return make_settings(
        backend,
        tmp_path,
        api_keys=[API_KEY],
        http_max_attempts=1,
        feed_max_bytes=CAP,
        feed_max_download_bytes=CAP,
    )


@pytest.fixture
def hub_config(scripted: tuple[ScriptedFeed, str]) -> HubConfig:
    return HubConfig.model_validate(
        {"connections": {CONNECTION: {"kind": "xml_feed", "url": scripted[1], "interval": "1h"}}}
    )


def padded(size: int) -> bytes:
    """A valid feed of about ``size`` bytes (one plan, then whitespace)."""
    head = sample("planList", 1).replace(b"</planList>", b"")
    return head + b" " * max(size - len(head), 0) + b"</planList>"


def gzipped(body: bytes) -> ScriptedBody:
    return gzip.compress(body, compresslevel=9), {"content-encoding": "gzip"}


ScriptedBody = tuple[bytes, dict[str, str]]
OVERSIZED: dict[str, Callable[[], ScriptedBody]] = {
    # Content-Length says it at once.
    "sent": lambda: (padded(4 * CAP), {}),
    # A gzip bomb: a few kilobytes on the wire, far over the cap once decoded.
    "decoded": lambda: gzipped(padded(200 * CAP)),
}


@pytest.mark.parametrize("case", sorted(OVERSIZED))
async def test_a_body_over_the_cap_fails_the_run_and_keeps_the_data(
    case: str,
    scripted: tuple[ScriptedFeed, str],
    sync_now: SyncNow,
    fresh_search: Any,
    db: Database,
) -> None:
    provider = scripted[0]
    provider.serve(200, sample("planList", 1))
    _, _, error = await sync_now()
    assert error is None
    before_search = (await fresh_search()).json()
    before = await snapshot(db)
    ingests = {"connection": CONNECTION, "result": "provider_error"}
    failed_ingests = sample_value("switchboard_feed_ingests_total", **ingests)

    body, headers = OVERSIZED[case]()
    provider.serve(200, body)
    provider.headers.update(headers)
    _, result, error = await sync_now(full=True)

    assert result is None and error is not None
    assert "larger than allowed" in error and f"{case}: over {CAP:,} bytes" in error
    assert sample_value("switchboard_feed_ingests_total", **ingests) == failed_ingests + 1
    assert await snapshot(db) == before
    assert (await fresh_search()).json() == before_search
    async with db.read_session() as session:
        staged = await session.scalar(select(func.count()).select_from(EventPlanStaging))
    assert staged == 0


async def test_a_body_under_the_caps_is_stored(
    scripted: tuple[ScriptedFeed, str], sync_now: SyncNow
) -> None:
    body, headers = gzipped(padded(CAP - 100))
    scripted[0].serve(200, body)
    scripted[0].headers.update(headers)
    _, result, error = await sync_now()
    assert error is None and result is not None and result.upserted == 4
