"""A streaming, hardened parser for the event provider's XML feed (both dialects).

Wire facts: ``shared/providers/FEVER.md``. The document is read with lxml's pull parser fed in
chunks: entities are not resolved, nothing is fetched from the network, ``huge_tree`` stays off
(lxml's limits on depth and text size apply), and each plan element is cleared as soon as it has
been read. :class:`FeedParser` hands the plans over as they are read (:meth:`FeedParser.take`),
so a caller that stores them as they come holds a few chunks' worth, whatever the document's size;
:func:`parse_feed` collects a whole (small) document.

A plan is validated on its own: an invalid one is skipped and counted by reason, the others are
kept. A document that is not a feed (not XML, truncated, empty, another root element) raises
:class:`NotAFeed`, and nothing of it is returned.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

ROOTS = ("planList", "eventList")
# Element names of each dialect: (base element, its id attribute, plan element, attr prefix).
_BASES = {"base_plan": "base_plan_id", "base_event": "base_event_id"}
_PLANS = {"plan": "plan_", "event": "event_"}
_TAGS = (*ROOTS, *_BASES, *_PLANS)
CHUNK = 1 << 20
MAX_EXAMPLES = 20


class NotAFeed(ValueError):
    """The document is not an event feed."""


class InvalidPlan(ValueError):
    """One plan cannot be read; ``reason`` is a short stable code for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One plan as the provider describes it. Dates are the provider's wall-clock values
    (naive unless the provider wrote an offset); prices are over every zone of the plan."""

    base_plan_id: str
    plan_id: str
    title: str
    sell_mode: str
    organizer_company_id: str | None
    starts: datetime
    ends: datetime
    sell_from: datetime | None
    sell_to: datetime | None
    sold_out: bool
    zones: int
    capacity: int
    min_price: float | None
    max_price: float | None


@dataclass
class ParsedFeed:
    dialect: str
    plans: list[FeedPlan] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


class FeedParser:
    """Incremental parser: :meth:`feed` chunks as they arrive, :meth:`take` the plans read so
    far, then :meth:`close` (whose ``plans`` are those not taken yet).

    Every valid plan is handed over, in document order: a plan that appears twice comes twice
    (telling duplicates apart needs every key of the document; the caller keeps them, see
    :func:`parse_chunks`, or its store does).
    """

    def __init__(self) -> None:
        self._parser = etree.XMLPullParser(
            events=("start", "end"),
            tag=_TAGS,
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            load_dtd=False,
            remove_comments=True,
            remove_pis=True,
        )
        self._dialect: str | None = None
        self._plans: list[FeedPlan] = []
        self._skipped: Counter[str] = Counter()
        self._examples: list[str] = []
        self._fed = 0

    def feed(self, chunk: bytes | memoryview) -> None:
        if not chunk:
            return
        self._fed += len(chunk)
        try:
            self._parser.feed(bytes(chunk))
        except etree.XMLSyntaxError as exc:
            raise NotAFeed(f"not well-formed XML: {exc}") from None
        self._drain()

    def close(self) -> ParsedFeed:
        if not self._fed:
            raise NotAFeed("empty document")
        try:
            root = self._parser.close()
        except etree.XMLSyntaxError as exc:
            raise NotAFeed(f"not well-formed XML: {exc}") from None
        self._drain()
        if self._dialect is None:
            raise NotAFeed(f"root element is <{root.tag}>, expected <planList> or <eventList>")
        plans, self._plans = self._plans, []
        return ParsedFeed(self._dialect, plans, self._skipped, self._examples)

    def take(self) -> list[FeedPlan]:
        """The plans read since the last call, in document order."""
        plans, self._plans = self._plans, []
        return plans

    def _drain(self) -> None:
        events: Iterable[tuple[str, Any]] = self._parser.read_events()
        for event, elem in events:
            tag = elem.tag
            if event == "start":
                if self._dialect is None:
                    if tag not in ROOTS or elem.getparent() is not None:
                        raise NotAFeed(f"root element is <{tag}>, expected <planList>")
                    if elem.getroottree().docinfo.doctype:
                        # The feed has no DTD; one here can only declare entities (billion
                        # laughs, external files), so the document is refused outright.
                        raise NotAFeed("documents with a DOCTYPE are not accepted")
                    self._dialect = tag
                continue
            if tag in _PLANS:
                self._plan(elem)
                _release(elem)
            elif tag in _BASES:
                _release(elem)

    def _plan(self, elem: Any) -> None:
        base = elem.getparent()
        if base is None or base.tag not in _BASES:
            self._skip("outside_base_plan", f"<{elem.tag}> outside a base plan")
            return
        try:
            plan = read_plan(base.tag, base.attrib, elem.tag, elem.attrib, elem)
        except InvalidPlan as exc:
            base_id = base.get(_BASES[base.tag])
            plan_id = elem.get(_PLANS[elem.tag] + "id")
            where = f"{base.tag} {base_id!r} {elem.tag} {plan_id!r}"
            self._skip(exc.reason, f"{where}: {exc}")
            return
        self._plans.append(plan)

    def _skip(self, reason: str, message: str) -> None:
        skip(self._skipped, self._examples, reason, message)


def skip(counts: Counter[str], examples: list[str], reason: str, message: str) -> None:
    """Count a skipped plan, keeping the first :data:`MAX_EXAMPLES` messages."""
    counts[reason] += 1
    if len(examples) < MAX_EXAMPLES:
        examples.append(message)


def duplicate_message(base_plan_id: str, plan_id: str) -> str:
    return f"plan {(base_plan_id, plan_id)} appears twice; the last one is kept"


def parse_feed(data: bytes, *, chunk_size: int = CHUNK) -> ParsedFeed:
    """Parse a whole document (fed in chunks, so parsing adds bounded memory to ``data``)."""
    return parse_chunks(
        memoryview(data)[i : i + chunk_size] for i in range(0, len(data), chunk_size)
    )


def parse_chunks(chunks: Iterable[bytes | memoryview]) -> ParsedFeed:
    """Parse a whole document; a plan that appears twice is counted as a ``duplicate`` skip and
    its last occurrence kept."""
    parser = FeedParser()
    plans: dict[tuple[str, str], FeedPlan] = {}
    duplicates: list[tuple[str, str]] = []
    for chunk in chunks:
        parser.feed(chunk)
        _keep_last(plans, parser.take(), duplicates)
    parsed = parser.close()
    _keep_last(plans, parsed.plans, duplicates)
    for key in duplicates:
        skip(parsed.skipped, parsed.examples, "duplicate", duplicate_message(*key))
    parsed.plans = list(plans.values())
    return parsed


def _keep_last(
    plans: dict[tuple[str, str], FeedPlan],
    batch: list[FeedPlan],
    duplicates: list[tuple[str, str]],
) -> None:
    for plan in batch:
        key = (plan.base_plan_id, plan.plan_id)
        if key in plans:
            duplicates.append(key)
        plans[key] = plan


def read_plan(
    base_tag: str, base: Any, plan_tag: str, attrs: Any, zones: Iterable[Any]
) -> FeedPlan:
    """Validate one plan element (with its base plan's attributes and its zones)."""
    prefix = _PLANS[plan_tag]
    base_plan_id = _required(base, _BASES[base_tag])
    title = _required(base, "title")
    sell_mode = _required(base, "sell_mode")
    plan_id = _required(attrs, prefix + "id")
    starts = _date(attrs, prefix + "start_date", required=True)
    ends = _date(attrs, prefix + "end_date", required=True)
    assert starts is not None and ends is not None
    if (starts.tzinfo is None) != (ends.tzinfo is None):
        raise InvalidPlan("bad_date", "start and end mix local and offset times")
    if ends < starts:
        raise InvalidPlan("end_before_start", f"ends {ends.isoformat()} before it starts")
    sold_out = attrs.get("sold_out", "false")
    if sold_out not in ("true", "false"):
        raise InvalidPlan("bad_value", f"sold_out={sold_out!r}")
    count = capacity = 0
    low = high = None
    for zone in zones:
        if zone.tag != "zone":
            continue
        price = _number(zone.get("price"), "price")
        seats = _number(zone.get("capacity", "0"), "capacity")
        if not seats.is_integer():
            raise InvalidPlan("bad_zone", f"zone capacity {zone.get('capacity')!r}")
        count += 1
        capacity += int(seats)
        low = price if low is None or price < low else low
        high = price if high is None or price > high else high
    return FeedPlan(
        base_plan_id=base_plan_id,
        plan_id=plan_id,
        title=title,
        sell_mode=sell_mode,
        organizer_company_id=base.get("organizer_company_id") or None,
        starts=starts,
        ends=ends,
        sell_from=_date(attrs, "sell_from", required=False),
        sell_to=_date(attrs, "sell_to", required=False),
        sold_out=sold_out == "true",
        zones=count,
        capacity=capacity,
        min_price=low,
        max_price=high,
    )


def _required(attrs: Any, name: str) -> str:
    value = attrs.get(name)
    if value is None or not value.strip():
        raise InvalidPlan("missing_attribute", f"missing {name}")
    return str(value).strip()


def _date(attrs: Any, name: str, *, required: bool) -> datetime | None:
    value = attrs.get(name)
    if value is None or not value.strip():
        if required:
            raise InvalidPlan("missing_attribute", f"missing {name}")
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPlan("bad_date", f"{name}={value!r} is not a date-time") from None


def _number(value: str | None, name: str) -> float:
    if value is None:
        raise InvalidPlan("bad_zone", f"zone without {name}")
    try:
        number = float(value)
    except ValueError:
        raise InvalidPlan("bad_zone", f"zone {name}={value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise InvalidPlan("bad_zone", f"zone {name}={value!r} is out of range")
    return number


def _release(elem: Any) -> None:
    """Free what has been read: the element's content and the siblings before it."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]
