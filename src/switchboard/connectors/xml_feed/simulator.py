"""Event provider simulator: the XML plan feed, in either dialect, unreliable on demand.

Wire facts: ``shared/providers/FEVER.md``. ``GET /api/events`` answers one of:

* ``mode="samples"``: the provider's sample documents ``{planList|eventList}/response_{1,2,3}.xml``
  in rotation (1, 2, 3, 1, …; a failed answer does not advance it), read from ``fever_dir``;
* ``mode="generated"``: a deterministic feed of ``base_plans`` x ``plans`` x ``zones`` built from
  ``seed`` in the chosen dialect (works without the shared files).

Knobs (also at ``GET|PUT|PATCH /_sandbox/events/settings``; ``POST /_sandbox/events/rewind``
restarts the rotation): ``unavailable_rate`` (503 with the provider's body), ``latency_ms``
(``[min, max]``, uniform), ``malformed_rate`` (a truncated, empty or non-XML 200 answer),
``stall_ms`` (send the first half of the document, then wait that long before the rest: a slow
provider mid-body).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from switchboard.sandbox.faults import Faults, FaultState, RequestLog, SandboxMiddleware

Dialect = Literal["planList", "eventList"]
FEED_PATH = "/api/events"
# The provider's 503 body (``fever/provider_503.json``), for a ``fever_dir`` without it.
UNAVAILABLE_BODY = {"detail": "Event API is not available at the moment. Come back later"}


def find_fever_dir() -> Path:
    """The provider's sample feeds and OpenAPI document, shipped inside this package."""
    return Path(__file__).resolve().parent / "fever"


class FeedSettings(BaseModel):
    """What the feed serves and how unreliably."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["samples", "generated"] = "samples"
    dialect: Dialect = "planList"
    base_plans: int = Field(10, ge=0, le=100_000)
    plans: int = Field(3, ge=0, le=1000, description="Plans per base plan.")
    zones: int = Field(5, ge=0, le=1000, description="Zones per plan.")
    seed: int = 0
    unavailable_rate: float = Field(0.0, ge=0, le=1)
    latency_ms: tuple[int, int] = (0, 0)
    malformed_rate: float = Field(0.0, ge=0, le=1)
    stall_ms: int = Field(0, ge=0, le=3_600_000, description="Pause in the middle of the body.")

    @model_validator(mode="after")
    def _latency_range(self) -> FeedSettings:
        low, high = self.latency_ms
        if not 0 <= low <= high:
            raise ValueError("latency_ms must be [min, max] with 0 <= min <= max")
        return self


# --- generated feeds -------------------------------------------------------------------------

TITLES = (
    "Camela en concierto",
    "Pantomima Full",
    "Los Morancos",
    "Tributo a Juanito Valderrama",
    "Rock & Roll <en vivo>",
    "Candlelight: Vivaldi",
    'Noche de "jazz"',
    "Ópera para niños",
)
ZONE_NAMES = ("Platea", "Grada", "Anfiteatro", "Palco", "Pista", "VIP", "General")


def _attrs(**values: str) -> str:
    return " ".join(f'{k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in values.items())


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=8)
def generate_feed(dialect: Dialect, base_plans: int, plans: int, zones: int, seed: int) -> bytes:
    """A valid feed document; same arguments, same bytes.

    Like the real provider: plan ids are unique only within a base plan, some base plans are
    offline, some plans are sold out and some zones have no capacity left.
    """
    rng = random.Random(seed)
    base_tag, plan_tag = ("base_plan", "plan") if dialect == "planList" else ("base_event", "event")
    epoch = datetime(2021, 1, 1, 0, 0)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<{dialect} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.0" '
        f'xsi:noNamespaceSchemaLocation="{dialect}.xsd">',
        "   <output>",
    ]
    zone_id = 1
    for b in range(base_plans):
        base_id = 100 + b
        attrs = {
            f"{base_tag}_id": str(base_id),
            "sell_mode": "offline" if rng.random() < 0.1 else "online",
        }
        if rng.random() < 0.5:
            attrs["organizer_company_id"] = str(rng.randint(1, 20))
        attrs["title"] = f"{rng.choice(TITLES)} {b + 1}"
        lines.append(f"      <{base_tag} {_attrs(**attrs)}>")
        plan_ids = rng.sample(range(1000, 1000 + max(plans * 4, 1)), plans)
        for plan_id in plan_ids:
            start = epoch + timedelta(days=rng.randrange(730), minutes=15 * rng.randrange(96))
            end = start + timedelta(minutes=30 * rng.randint(1, 8))
            plan = {
                f"{plan_tag}_start_date": _stamp(start),
                f"{plan_tag}_end_date": _stamp(end),
                f"{plan_tag}_id": str(plan_id),
                "sell_from": _stamp(start - timedelta(days=rng.randint(7, 180))),
                "sell_to": _stamp(start - timedelta(minutes=10)),
                "sold_out": "true" if rng.random() < 0.1 else "false",
            }
            lines.append(f"         <{plan_tag} {_attrs(**plan)}>")
            for _ in range(zones):
                zone = {
                    "zone_id": str(zone_id),
                    "capacity": str(rng.choice((0, rng.randint(1, 500)))),
                    "price": f"{rng.randint(5, 150)}.{rng.choice(('00', '50', '99'))}",
                    "name": f"{rng.choice(ZONE_NAMES)} {rng.randint(1, 30)}",
                    "numbered": rng.choice(("true", "false")),
                }
                zone_id += 1
                lines.append(f"            <zone {_attrs(**zone)} />")
            lines.append(f"         </{plan_tag}>")
        lines.append(f"      </{base_tag}>")
    lines += ["   </output>", f"</{dialect}>"]
    return "\n".join(lines).encode()


async def _stalled(document: bytes, seconds: float) -> AsyncIterator[bytes]:
    half = len(document) // 2
    yield document[:half]
    await asyncio.sleep(seconds)
    yield document[half:]


# --- the simulator ---------------------------------------------------------------------------


class EventFeedSimulator:
    """The XML feed provider."""

    def __init__(
        self,
        settings: FeedSettings | None = None,
        *,
        fever_dir: Path | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.fever_dir = fever_dir if fever_dir is not None else find_fever_dir()
        self._lock = threading.Lock()
        self.settings = self._checked(settings or FeedSettings())
        self._rng = random.Random(self.settings.seed)
        self.position = 0  # next sample (0-based)
        self.served = 0
        self.faults = FaultState(faults, seed=self.settings.seed)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(
            self._build(),
            faults=self.faults,
            log=self.log,
            unavailable=self._unavailable,
        )

    def _checked(self, settings: FeedSettings) -> FeedSettings:
        if settings.mode == "samples":
            folder = self.fever_dir
            if folder is None or not (folder / settings.dialect).is_dir():
                raise FileNotFoundError(
                    f"sample feeds not found (fever_dir={folder}); pass a folder laid out like "
                    "switchboard/connectors/xml_feed/fever, or use mode='generated'"
                )
        return settings

    def configure(self, **changes: Any) -> FeedSettings:
        with self._lock:
            settings = FeedSettings.model_validate({**self.settings.model_dump(), **changes})
            self.settings = self._checked(settings)
            if "seed" in changes:
                self._rng = random.Random(self.settings.seed)
            return self.settings

    def rewind(self) -> None:
        with self._lock:
            self.position = 0

    def _unavailable(self) -> Response:
        body: Any = UNAVAILABLE_BODY
        if self.fever_dir is not None and (self.fever_dir / "provider_503.json").is_file():
            body = json.loads((self.fever_dir / "provider_503.json").read_text(encoding="utf-8"))
        return JSONResponse(body, status_code=503)

    def document(self) -> bytes:
        """The next document the feed serves (advances the sample rotation)."""
        with self._lock:
            s = self.settings
            if s.mode == "generated":
                return generate_feed(s.dialect, s.base_plans, s.plans, s.zones, s.seed)
            assert self.fever_dir is not None
            index = self.position % 3 + 1
            self.position += 1
        return (self.fever_dir / s.dialect / f"response_{index}.xml").read_bytes()

    async def feed(self, request: Request) -> Response:
        with self._lock:
            s = self.settings
            delay = self._rng.uniform(*s.latency_ms) / 1000 if s.latency_ms[1] else 0.0
            unavailable = self._rng.random() < s.unavailable_rate
            malformed = self._rng.random() < s.malformed_rate
            kind = self._rng.choice(("truncated", "empty", "not_xml"))
        if delay:
            await asyncio.sleep(delay)
        if unavailable:
            return self._unavailable()
        document = self.document()
        with self._lock:
            self.served += 1
        if malformed:
            document = {
                "truncated": document[: len(document) // 2],
                "empty": b"",
                "not_xml": b"<html><body>Bad gateway</body></html",
            }[kind]
        if s.stall_ms:
            return StreamingResponse(
                _stalled(document, s.stall_ms / 1000), media_type="application/xml"
            )
        return Response(document, media_type="application/xml")

    async def control_settings(self, request: Request) -> Response:
        try:
            if request.method in ("PUT", "PATCH"):
                data = json.loads(await request.body() or b"{}")
                if request.method == "PUT":
                    data = {**FeedSettings().model_dump(), **data}
                self.configure(**data)
        except ValidationError as exc:
            return JSONResponse({"detail": json.loads(exc.json(include_url=False))}, 422)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            return JSONResponse({"detail": str(exc)}, 400)
        return JSONResponse(
            {**self.settings.model_dump(), "position": self.position, "served": self.served}
        )

    async def control_rewind(self, request: Request) -> Response:
        self.rewind()
        return Response(status_code=204)

    def _build(self) -> Starlette:
        return Starlette(
            routes=[
                Route(FEED_PATH, self.feed, methods=["GET"]),
                Route(
                    "/_sandbox/events/settings",
                    self.control_settings,
                    methods=["GET", "PUT", "PATCH"],
                ),
                Route("/_sandbox/events/rewind", self.control_rewind, methods=["POST"]),
            ]
        )
