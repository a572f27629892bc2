"""Reading requests the way HubSpot does: JSON bodies, ``properties`` and ``after`` parameters."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.requests import Request

from switchboard.connectors.hubspot.simulator.errors import validation_error


def encode_after(cid: int) -> str:
    # Opaque on purpose: clients must echo it, not compute it.
    return base64.urlsafe_b64encode(f"c{cid}".encode()).decode().rstrip("=")


def decode_after(after: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("c") or not raw[1:].isdigit():
        raise validation_error(f"Invalid after token: {after}")
    return int(raw[1:])


def properties_param(request: Request) -> list[str] | None:
    values = request.query_params.getlist("properties")
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise validation_error(
            f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def as_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: expected an object.")
    return body
