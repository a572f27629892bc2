"""``GET /search``: the provider's search contract, answered from this process's index.

Requests are served by ``fastpath`` in front of the application; this route documents the
operation in ``/openapi.json``, answers what the fast path hands down (another method, a request
with a body) and is the reference the fast path is tested against. Validation and envelopes live
here, for both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from switchboard.deps import Authenticated
from switchboard.errors import AppError
from switchboard.events.index import index_for
from switchboard.events.schemas import QUERY_PARAMETERS, ErrorEnvelope, SearchResponse

log = structlog.get_logger("switchboard.events")


class ContractRoute(APIRoute):
    """A route whose every answer, errors raised before the handler included (the API key's
    401, a wrong method's 405), is in the search contract's envelope rather than the hub's
    ``{"detail"}``. The success path only enters a ``try``, which costs nothing."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def contract_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except AppError as exc:
                return _error(exc.status_code, exc.message, exc.headers)
            except HTTPException as exc:
                return _error(exc.status_code, str(exc.detail), exc.headers)

        return contract_handler

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().handle(scope, receive, send)
        except HTTPException as exc:  # raised by the routing itself (405)
            await _error(exc.status_code, str(exc.detail), exc.headers)(scope, receive, send)


router = APIRouter(tags=["events"], dependencies=Authenticated, route_class=ContractRoute)


class BadQuery(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def envelope_body(code: str, message: str) -> bytes:
    """The contract's error body (also written by ``fastpath``)."""
    return json.dumps({"error": {"code": code, "message": message}, "data": None}).encode()


def status_code_name(status: int) -> str:
    """The envelope's ``code`` for an error the hub raised: the status's name
    (``unauthorized``, ``method_not_allowed``)."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _envelope(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = envelope_body(code, message)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: Mapping[str, str] | None) -> Response:
    """An error the hub raised, in the envelope."""
    return _envelope(status, status_code_name(status), message, headers)


def parse_window(starts_raw: str | None, ends_raw: str | None) -> tuple[float | None, float | None]:
    """The query's window as epoch seconds (None: open); :class:`BadQuery` when malformed or
    inverted."""
    starts_at = parse_instant(starts_raw, "starts_at")
    ends_at = parse_instant(ends_raw, "ends_at")
    if starts_at is not None and ends_at is not None and starts_at > ends_at:
        raise BadQuery("invalid_range", "starts_at must not be later than ends_at")
    return starts_at, ends_at


SEARCH_FAILED = ("internal_error", "The search failed; try again later")


def parse_instant(raw: str | None, name: str) -> float | None:
    """An RFC 3339 date-time as epoch seconds (None when absent). Offsets are honoured; a time
    without one is read as UTC."""
    if raw is None:
        return None
    text = raw.strip().upper()
    if "T" not in text:
        raise BadQuery("invalid_parameter", f"{name} must be a date-time like 2021-07-21T17:32:28Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    except (ValueError, OverflowError):
        raise BadQuery(
            "invalid_parameter", f"{name} is not a valid date-time: {raw[:64]!r}"
        ) from None


@router.get(
    "/search",
    operation_id="searchEvents",
    summary="Lists the available events on a time range",
    response_class=Response,
    responses={
        200: {"model": SearchResponse, "description": "List of plans"},
        400: {"model": ErrorEnvelope, "description": "The request was not correctly formed"},
        401: {"model": ErrorEnvelope, "description": "Missing or invalid API key"},
        500: {"model": ErrorEnvelope, "description": "Generic error"},
    },
    openapi_extra={"parameters": QUERY_PARAMETERS},
)
async def search(request: Request) -> Response:
    """Plans that start at or after ``starts_at`` and end at or before ``ends_at`` (both
    optional), from the hub's own store: it never calls the provider."""
    # Parsed here rather than by FastAPI: the contract wants its own 400 envelope, not a 422.
    params = request.query_params
    try:
        starts_at, ends_at = parse_window(params.get("starts_at"), params.get("ends_at"))
    except BadQuery as exc:
        return _envelope(400, exc.code, exc.message)
    try:
        index = index_for(request.app.state.db)
        await index.ensure_fresh()
        body = index.search(starts_at, ends_at)
    except Exception:  # the contract's 500 envelope, not the hub's generic error body
        log.exception("search_failed")
        return _envelope(500, *SEARCH_FAILED)
    return Response(body, media_type="application/json")
