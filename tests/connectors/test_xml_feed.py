"""The feed parser, without a database: both dialects, per-plan validation, hardening."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from switchboard.connectors.xml_feed import NotAFeed, parse_chunks, parse_feed
from switchboard.connectors.xml_feed.simulator import find_fever_dir, generate_feed

FEVER_DIR = find_fever_dir()  # the provider's samples, shipped with the simulator


def sample(dialect: str, number: int) -> bytes:
    return (FEVER_DIR / dialect / f"response_{number}.xml").read_bytes()


@pytest.mark.parametrize("dialect", ["planList", "eventList"])
def test_both_dialects_read_the_same(dialect: str) -> None:
    parsed = parse_feed(sample(dialect, 1), chunk_size=64)
    assert parsed.dialect == dialect
    by_key = {(p.base_plan_id, p.plan_id): p for p in parsed.plans}
    morancos = by_key[("1591", "1642")]
    assert morancos.title == "Los Morancos" and morancos.sell_mode == "online"
    assert morancos.starts == datetime(2021, 7, 31, 20, 0)
    assert morancos.ends == datetime(2021, 7, 31, 21, 0)
    # Zone 186 appears twice in this plan: both count, for prices and capacity.
    assert (morancos.zones, morancos.capacity) == (2, 18)
    assert (morancos.min_price, morancos.max_price) == (65.0, 75.0)
    assert morancos.organizer_company_id == "1" and not morancos.sold_out
    # plan_id 1642 under two base plans: two plans.
    assert ("322", "1642") in by_key


def test_the_impossible_date_is_one_skipped_plan() -> None:
    parsed = parse_feed(sample("planList", 2))
    assert sorted((p.base_plan_id, p.plan_id) for p in parsed.plans) == [
        ("1591", "1642"),
        ("291", "291"),
    ]
    assert dict(parsed.skipped) == {"bad_date": 1}
    assert "444" in parsed.examples[0] and "2021-09-31" in parsed.examples[0]


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"   ",
        b'{"detail": "Event API is not available at the moment. Come back later"}',
        b"<html><body>Bad gateway</body></html",
        b"<html><body>ok</body></html>",
        b"<wrapper><planList><output/></planList></wrapper>",
    ],
)
def test_what_is_not_a_feed(document: bytes) -> None:
    with pytest.raises(NotAFeed):
        parse_feed(document)


def test_a_truncated_document_is_not_a_feed_even_after_plans_were_read() -> None:
    document = sample("planList", 1)
    with pytest.raises(NotAFeed):
        parse_feed(document[: len(document) - 40])


def test_an_empty_feed_is_a_feed_with_no_plans() -> None:
    parsed = parse_feed(b"<planList><output></output></planList>")
    assert parsed.plans == [] and parsed.skipped_total == 0


@pytest.mark.parametrize(
    "doctype",
    [
        # Billion laughs: internal entities expanding exponentially.
        b'<!DOCTYPE planList [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
        # XXE: an external entity naming a local file.
        b'<!DOCTYPE planList [<!ENTITY c SYSTEM "file:///etc/passwd">]>',
        # An external DTD fetched from the network.
        b'<!DOCTYPE planList SYSTEM "http://127.0.0.1:9/evil.dtd">',
    ],
)
def test_documents_with_a_doctype_are_refused(doctype: bytes) -> None:
    document = (
        b'<?xml version="1.0"?>' + doctype + b'<planList><output><base_plan base_plan_id="1" '
        b'sell_mode="online" title="&c;"><plan plan_id="1" plan_start_date="2021-01-01T00:00:00" '
        b'plan_end_date="2021-01-01T01:00:00"/></base_plan></output></planList>'
    )
    with pytest.raises(NotAFeed, match=r"DOCTYPE|entity"):
        parse_feed(document)


def test_memory_stays_bounded_on_a_large_feed(tmp_path: Path) -> None:
    """Parsing a 40 MB document read from a file in chunks: without releasing elements lxml's
    tree alone would take several times the document; with it, memory grows with the plans."""
    document = tmp_path / "feed.xml"
    document.write_bytes(generate_feed("planList", 2000, 5, 40, 3))
    size = document.stat().st_size
    script = f"""
import resource
from switchboard.connectors.xml_feed import parse_chunks
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def chunks():
    with open({str(document)!r}, "rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk
parsed = parse_chunks(chunks())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(parsed.plans) + parsed.skipped_total, (after - before) * 1024)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    plans, grown = int(out[0]), int(out[1])
    assert plans == 10_000
    assert size > 35_000_000
    assert grown < size / 2, f"parsing a {size:,} byte feed grew memory by {grown:,} bytes"


def test_chunk_boundaries_do_not_matter() -> None:
    document = generate_feed("eventList", 30, 3, 5, 1)
    whole = parse_feed(document)
    bytewise = parse_chunks(document[i : i + 1] for i in range(len(document)))
    assert whole.plans == bytewise.plans and whole.skipped == bytewise.skipped
    assert len(whole.plans) == 90
