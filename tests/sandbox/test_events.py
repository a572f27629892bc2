"""Event feed simulator: sample rotation, generated feeds in both dialects, failure knobs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.connectors.xml_feed.simulator import UNAVAILABLE_BODY, Dialect
from switchboard.sandbox import EventFeedSimulator, FeedSettings, generate_feed
from tests.sandbox.conftest import FEVER_DIR

DIALECTS: dict[Dialect, tuple[str, str]] = {
    "planList": ("base_plan", "plan"),
    "eventList": ("base_event", "event"),
}


def serve(asgi_server: Callable[[Any], str], **settings: Any) -> tuple[EventFeedSimulator, str]:
    sim = EventFeedSimulator(FeedSettings(**settings), fever_dir=FEVER_DIR)
    return sim, asgi_server(sim.app)


@pytest.mark.parametrize("dialect", ["planList", "eventList"])
def test_samples_rotate(asgi_server: Callable[[Any], str], dialect: str) -> None:
    _, url = serve(asgi_server, dialect=dialect)

    bodies = [httpx.get(f"{url}/api/events") for _ in range(4)]

    expected = [(FEVER_DIR / dialect / f"response_{i}.xml").read_bytes() for i in (1, 2, 3, 1)]
    assert [b.content for b in bodies] == expected
    assert bodies[0].headers["content-type"].startswith("application/xml")


def test_rewind_and_settings(asgi_server: Callable[[Any], str]) -> None:
    _, url = serve(asgi_server)
    httpx.get(f"{url}/api/events")
    assert httpx.post(f"{url}/_sandbox/events/rewind").status_code == 204
    assert (
        httpx.get(f"{url}/api/events").content
        == (FEVER_DIR / "planList/response_1.xml").read_bytes()
    )

    changed = httpx.patch(
        f"{url}/_sandbox/events/settings", json={"mode": "generated", "dialect": "eventList"}
    )
    assert changed.json()["mode"] == "generated"
    assert ET.fromstring(httpx.get(f"{url}/api/events").content).tag == "eventList"
    bad = httpx.patch(f"{url}/_sandbox/events/settings", json={"latency_ms": [5, 1]})
    assert bad.status_code == 422


@pytest.mark.parametrize("dialect", ["planList", "eventList"])
def test_generated_feed_is_valid_and_deterministic(dialect: Dialect) -> None:
    document = generate_feed(dialect, 20, 3, 4, 42)

    assert generate_feed(dialect, 20, 3, 4, 42) == document
    assert generate_feed(dialect, 20, 3, 4, 43) != document
    root = ET.fromstring(document)
    base_tag, plan_tag = DIALECTS[dialect]
    assert root.tag == dialect
    assert root.get("version") == "1.0"
    bases = root.findall(f"./output/{base_tag}")
    assert len(bases) == 20
    assert {b.get("sell_mode") for b in bases} <= {"online", "offline"}
    for base in bases:
        assert base.get(f"{base_tag}_id") and base.get("title")
        plans = base.findall(plan_tag)
        assert len(plans) == 3
        assert len({p.get(f"{plan_tag}_id") for p in plans}) == 3  # unique within a base plan
        for plan in plans:
            start = datetime.fromisoformat(plan.get(f"{plan_tag}_start_date", ""))
            end = datetime.fromisoformat(plan.get(f"{plan_tag}_end_date", ""))
            assert start < end
            assert plan.get("sold_out") in ("true", "false")
            zones = plan.findall("zone")
            assert len(zones) == 4
            for zone in zones:
                assert float(zone.get("price", "")) > 0
                assert int(zone.get("capacity", "")) >= 0
                assert zone.get("numbered") in ("true", "false")


def test_generated_feed_has_the_same_shape_as_the_samples() -> None:
    def shape(root: ET.Element) -> set[tuple[str, frozenset[str]]]:
        return {(e.tag, frozenset(e.attrib) - {"organizer_company_id"}) for e in root.iter()}

    for dialect in DIALECTS:
        sample = ET.parse(FEVER_DIR / dialect / "response_1.xml").getroot()
        generated = ET.fromstring(generate_feed(dialect, 30, 2, 2, 0))
        assert shape(generated) == shape(sample)


def test_generated_mode_needs_no_shared_files(
    asgi_server: Callable[[Any], str], tmp_path: Path
) -> None:
    sim = EventFeedSimulator(
        FeedSettings(mode="generated", base_plans=5, unavailable_rate=1.0), fever_dir=tmp_path
    )
    url = asgi_server(sim.app)

    down = httpx.get(f"{url}/api/events")
    assert down.status_code == 503
    assert down.json() == UNAVAILABLE_BODY
    sim.configure(unavailable_rate=0)
    assert len(ET.fromstring(httpx.get(f"{url}/api/events").content).findall("./output/*")) == 5
    with pytest.raises(FileNotFoundError):
        EventFeedSimulator(FeedSettings(mode="samples"), fever_dir=tmp_path)


def test_503_knob_uses_the_providers_body(asgi_server: Callable[[Any], str]) -> None:
    sim, url = serve(asgi_server, unavailable_rate=0.5, seed=1)

    with httpx.Client(base_url=url) as http:
        responses = [http.get("/api/events") for _ in range(40)]

    failed = [r for r in responses if r.status_code == 503]
    assert 8 <= len(failed) <= 32
    assert failed[0].json() == json.loads((FEVER_DIR / "provider_503.json").read_text())
    assert {r.status_code for r in responses} == {200, 503}
    # Failures do not advance the rotation.
    assert sim.position == 40 - len(failed)


def test_malformed_documents(asgi_server: Callable[[Any], str]) -> None:
    _, url = serve(asgi_server, mode="generated", malformed_rate=1.0, seed=3)

    with httpx.Client(base_url=url) as http:
        bodies = [http.get("/api/events") for _ in range(12)]

    assert all(b.status_code == 200 for b in bodies)
    for body in bodies:
        with pytest.raises(ET.ParseError):
            ET.fromstring(body.content)


def test_latency_knob(asgi_server: Callable[[Any], str]) -> None:
    _, url = serve(asgi_server, latency_ms=(100, 120))

    response = httpx.get(f"{url}/api/events")

    assert response.elapsed.total_seconds() >= 0.1
