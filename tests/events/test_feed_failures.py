"""Documents that are not feeds, a provider that fails, conditional GET, offline plans."""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchboard.config import HubConfig
from switchboard.db import Database
from switchboard.events.versions import current_version
from switchboard.models import EventPlan, SyncRun
from tests.events.conftest import FEVER_DIR, ScriptedFeed, SyncNow, sample

PROVIDER_503 = (FEVER_DIR / "provider_503.json").read_bytes()


@pytest.fixture
def provider(scripted: tuple[ScriptedFeed, str]) -> ScriptedFeed:
    return scripted[0]


@pytest.fixture
def hub_config(scripted: tuple[ScriptedFeed, str]) -> HubConfig:
    return HubConfig.model_validate(
        {"connections": {"events": {"kind": "xml_feed", "url": scripted[1], "interval": "1h"}}}
    )


async def snapshot(db: Database) -> tuple[int, list[tuple[Any, ...]]]:
    from sqlalchemy import select

    async with db.read_session() as session:
        version = await current_version(session)
        rows = (
            await session.execute(
                select(
                    EventPlan.id,
                    EventPlan.content_hash,
                    EventPlan.in_feed,
                    EventPlan.ever_online,
                    EventPlan.version,
                ).order_by(EventPlan.id)
            )
        ).all()
    return version, [tuple(r) for r in rows]


NOT_FEEDS = {
    "malformed": (200, sample("planList", 2)[:700], "application/xml"),
    "empty": (200, b"", "application/xml"),
    "html": (200, b"<html><body>Bad gateway</body></html>", "text/html"),
    "json_200": (200, PROVIDER_503, "application/json"),
    "provider_503": (503, PROVIDER_503, "application/json"),
    "doctype": (
        200,
        b'<?xml version="1.0"?><!DOCTYPE planList [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<planList><output>&x;</output></planList>",
        "application/xml",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_FEEDS))
async def test_a_document_that_is_not_a_feed_changes_nothing_and_fails_the_run(
    case: str,
    provider: ScriptedFeed,
    sync_now: SyncNow,
    fresh_search: Any,
    db: Database,
) -> None:
    provider.serve(200, sample("planList", 1))
    _, result, error = await sync_now()
    assert error is None and result is not None and result.upserted == 4
    before_search = (await fresh_search()).json()
    before = await snapshot(db)

    status, body, media_type = NOT_FEEDS[case]
    provider.serve(status, body, media_type)
    run, result, error = await sync_now()
    assert error is not None
    if case == "provider_503":
        assert "503" in error and "not available" in error
    else:
        assert "not a feed" in error

    assert await snapshot(db) == before
    assert (await fresh_search()).json() == before_search
    async with db.read_session() as session:
        stored = await session.get(SyncRun, run.id)
    assert stored is not None and stored.outcome == "failed"
    assert stored.errors == 1 and stored.detail is not None and stored.detail["error"] == error


async def test_provider_down_search_unchanged(
    hub_config: HubConfig, provider: ScriptedFeed, sync_now: SyncNow, fresh_search: Any
) -> None:
    provider.serve(200, sample("eventList", 1))
    await sync_now()
    before = (await fresh_search()).json()
    assert len(before["data"]["events"]) == 3
    provider.serve(503, PROVIDER_503, "application/json")
    for _ in range(3):
        _, _, error = await sync_now()
        assert error is not None
    assert (await fresh_search()).json() == before


async def test_an_invalid_plan_is_skipped_and_the_rest_stored(
    provider: ScriptedFeed, sync_now: SyncNow, fresh_search: Any
) -> None:
    document = b"""<?xml version="1.0" encoding="UTF-8"?>
<planList version="1.0"><output>
  <base_plan base_plan_id="1" sell_mode="online" title="Good &amp; &lt;fine&gt;">
    <plan plan_start_date="2021-03-01T20:00:00" plan_end_date="2021-03-01T22:00:00" plan_id="10"
          sell_from="2021-01-01T00:00:00" sell_to="2021-03-01T19:00:00" sold_out="false">
      <zone zone_id="1" capacity="10" price="12.50" name="A" numbered="true"/>
      <zone zone_id="1" capacity="0" price="9.99" name="A" numbered="false"/>
    </plan>
    <plan plan_start_date="2021-03-02T20:00:00" plan_end_date="2021-03-02T22:00:00" plan_id="11"
          sold_out="false"/>
    <plan plan_start_date="2021-03-03T20:00:00" plan_end_date="2021-03-03T19:00:00" plan_id="12"/>
    <plan plan_start_date="2021-03-04T20:00:00" plan_end_date="2021-03-04T21:00:00" plan_id="13">
      <zone zone_id="2" capacity="5" price="free" name="B" numbered="true"/>
    </plan>
    <plan plan_end_date="2021-03-05T21:00:00" plan_id="14"/>
  </base_plan>
  <base_plan base_plan_id="2" sell_mode="online">
    <plan plan_start_date="2021-03-06T20:00:00" plan_end_date="2021-03-06T21:00:00" plan_id="1"/>
  </base_plan>
</output></planList>"""
    provider.serve(200, document)
    _, result, error = await sync_now()
    assert error is None and result is not None
    assert result.upserted == 2
    assert result.skipped == 4
    assert result.detail["skipped_reasons"] == {
        "end_before_start": 1,
        "bad_zone": 1,
        "missing_attribute": 2,
    }
    events = (await fresh_search()).json()["data"]["events"]
    assert [(e["title"], e["start_date"], e["min_price"], e["max_price"]) for e in events] == [
        ("Good & <fine>", "2021-03-01", 9.99, 12.5),
        ("Good & <fine>", "2021-03-02", None, None),  # no zones: no prices
    ]


def offline_online(mode: str, end: str = "21:00:00") -> bytes:
    return f"""<planList><output>
  <base_plan base_plan_id="7" sell_mode="{mode}" title="Sometimes online">
    <plan plan_start_date="2021-05-01T20:00:00" plan_end_date="2021-05-01T{end}" plan_id="70">
      <zone zone_id="1" capacity="3" price="20.00" name="A" numbered="true"/>
    </plan>
  </base_plan>
  <base_plan base_plan_id="8" sell_mode="offline" title="Never online">
    <plan plan_start_date="2021-05-02T20:00:00" plan_end_date="2021-05-02T21:00:00" plan_id="80">
      <zone zone_id="1" capacity="3" price="20.00" name="A" numbered="true"/>
    </plan>
  </base_plan>
</output></planList>""".encode()


async def test_offline_plans_are_stored_but_never_shown_and_online_is_sticky(
    provider: ScriptedFeed, sync_now: SyncNow, fresh_search: Any, db: Database
) -> None:
    provider.serve(200, offline_online("offline"))
    await sync_now()
    assert (await fresh_search()).json()["data"]["events"] == []
    _, rows = await snapshot(db)
    assert len(rows) == 2  # both stored

    provider.serve(200, offline_online("online"))
    await sync_now()
    assert [e["title"] for e in (await fresh_search()).json()["data"]["events"]] == [
        "Sometimes online"
    ]
    # Offline again, with a new end time: still shown (it was online once), latest values.
    provider.serve(200, offline_online("offline", end="21:45:00"))
    await sync_now()
    events = (await fresh_search()).json()["data"]["events"]
    assert [(e["title"], e["end_time"]) for e in events] == [("Sometimes online", "21:45:00")]


async def test_conditional_get_with_the_providers_etag(
    provider: ScriptedFeed, sync_now: SyncNow, fresh_search: Any, db: Database
) -> None:
    provider.etag = '"v1"'
    provider.serve(200, sample("planList", 1))
    await sync_now()
    assert "if-none-match" not in provider.requests[-1]
    before = await snapshot(db)
    _, result, error = await sync_now()
    assert provider.requests[-1]["if-none-match"] == '"v1"'
    assert error is None and result is not None and result.detail == {"not_modified": True}
    assert await snapshot(db) == before
    # A full sync ignores the validators.
    await sync_now(full=True)
    assert "if-none-match" not in provider.requests[-1]
    provider.etag = '"v2"'
    provider.serve(200, sample("planList", 2))
    _, result, _ = await sync_now()
    assert result is not None and result.upserted == 2
    assert len((await fresh_search()).json()["data"]["events"]) == 4


async def test_runs_are_recorded_with_counts(
    provider: ScriptedFeed, sync_now: SyncNow, client: Any
) -> None:
    provider.serve(200, sample("planList", 1))
    await sync_now()
    provider.serve(200, b"")
    await sync_now()
    provider.serve(200, sample("planList", 2))
    await sync_now()
    response = await client.get("/connections/events/runs")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(r["outcome"], r["upserted"], r["skipped"], r["errors"]) for r in items] == [
        ("succeeded", 2, 1, 0),
        ("failed", 0, 0, 1),
        ("succeeded", 4, 0, 0),
    ]
    assert json.dumps(items[0]["detail"]["skipped_reasons"]) == '{"bad_date": 1}'
    assert items[0]["detail"]["left_feed"] == 2
