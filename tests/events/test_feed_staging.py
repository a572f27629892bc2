"""A document larger than one staging batch: the same answers as a small one (duplicates across
batches, plans that leave the feed, unchanged plans written nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from switchboard.config import HubConfig
from switchboard.db import Database
from switchboard.events.service import plan_uuid
from switchboard.models import EventPlan, EventPlanStaging
from tests.events.conftest import CONNECTION, ScriptedFeed, SyncNow

PLANS = 12_000  # over two staging batches, and over several 1 MiB chunks


def document(plans: int, *, last_title: str = "Again", skip: int | None = None) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?><planList version="1.0"><output>']
    for n in range(plans):
        if n == skip:
            continue
        lines.append(
            f'<base_plan base_plan_id="{n}" sell_mode="online" title="Plan {n} {"x" * 120}">'
            f'<plan plan_start_date="2021-03-01T20:00:00" plan_end_date="2021-03-01T22:00:00" '
            f'plan_id="1" sold_out="false"><zone zone_id="1" capacity="1" price="5.00" name="A" '
            f'numbered="true"/></plan></base_plan>'
        )
    # The first plan again, last: a duplicate a whole batch away; its last values win.
    lines.append(
        f'<base_plan base_plan_id="0" sell_mode="online" title="{last_title}">'
        f'<plan plan_start_date="2021-03-01T20:00:00" plan_end_date="2021-03-01T22:00:00" '
        f'plan_id="1" sold_out="false"/></base_plan>'
    )
    lines.append("</output></planList>")
    return "\n".join(lines).encode()


@pytest.fixture
def hub_config(scripted: tuple[ScriptedFeed, str]) -> HubConfig:
    return HubConfig.model_validate(
        {"connections": {CONNECTION: {"kind": "xml_feed", "url": scripted[1], "interval": "1h"}}}
    )


async def test_a_feed_over_several_staging_batches(
    scripted: tuple[ScriptedFeed, str], sync_now: SyncNow, db: Database
) -> None:
    provider = scripted[0]
    body = document(PLANS)
    assert len(body) > 3 << 20
    provider.serve(200, body)
    _, result, error = await sync_now()
    assert error is None and result is not None
    assert result.detail["plans"] == PLANS and result.upserted == PLANS
    assert result.skipped == 1 and result.detail["skipped_reasons"] == {"duplicate": 1}
    assert "appears twice" in result.detail["skipped_examples"][0]
    async with db.read_session() as session:
        first = await session.get(EventPlan, plan_uuid(CONNECTION, "0", "1"))
        staged = await session.scalar(select(func.count()).select_from(EventPlanStaging))
    assert first is not None and first.title == "Again" and first.min_price is None
    assert staged == 0

    # One plan changed, one left the feed: only those are touched.
    provider.serve(200, document(PLANS, last_title="Changed", skip=7))
    _, result, error = await sync_now()
    assert error is None and result is not None
    assert result.upserted == 1 and result.detail["left_feed"] == 1
    assert result.detail["plans"] == PLANS - 1
    async with db.read_session() as session:
        gone: Any = await session.get(EventPlan, plan_uuid(CONNECTION, "7", "1"))
        in_feed = await session.scalar(select(func.count()).where(EventPlan.in_feed.is_(True)))
    assert gone is not None and not gone.in_feed and gone.title.startswith("Plan 7")
    assert in_feed == PLANS - 1
