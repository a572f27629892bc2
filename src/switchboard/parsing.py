"""Parsing what anyone can send: header integers, signatures, JSON bodies, timestamps, cursors.

Every value here comes from an untrusted client, so each helper has one contract: it returns a
value the rest of the code can use as is (an integer that fits a database column, a timestamp
that converts to UTC, JSON whose strings the database can store), or it fails with a 4xx the
caller can answer. Python's own parsers are not enough on their own: ``str.isdigit()`` accepts
``"²"`` which ``int()`` refuses, ``json.loads`` raises ``RecursionError`` on deep nesting and
``ValueError`` on integers of more than 4,300 digits, ``hmac.compare_digest`` raises
``TypeError`` on non-ASCII text, and ``datetime.astimezone`` overflows at the calendar's edges.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator

MAX_ROW_ID = 2**63 - 1
"""Largest id of a row (``BIGINT``; asyncpg refuses larger integers, SQLite too)."""

MAX_JSON_DEPTH = 64
"""Deepest nesting accepted in a JSON body: far beyond any provider's events, and shallow
enough that re-encoding a stored event can never hit the interpreter's recursion limit."""


def ascii_int(text: str | None, *, max_digits: int = 19) -> int | None:
    """``text`` as a non-negative decimal integer of ASCII digits only and at most
    ``max_digits`` of them, else ``None`` (the caller decides the answer)."""
    if text is None or not 0 < len(text) <= max_digits:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def same_signature(expected: str | bytes, presented: str | bytes) -> bool:
    """Constant-time comparison of two signatures as bytes (``hmac.compare_digest`` raises on
    non-ASCII text; a header may carry any byte)."""
    return hmac.compare_digest(_bytes(expected), _bytes(presented))


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


class InvalidJson(ValueError):
    """The body is not JSON this hub accepts."""


def _no_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Decode a request body as strict JSON (RFC 8259, UTF-8), or raise :class:`InvalidJson`
    with a message safe to send back.

    Also refused, because they would fail later in a way the sender could not act on: nesting
    deeper than :data:`MAX_JSON_DEPTH`, integers of more than 4,300 digits, ``NaN``/``Infinity``,
    and strings holding NUL or lone surrogates (PostgreSQL cannot store them as text).
    """
    if not body.strip():
        raise InvalidJson("The body is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"The body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJson(
            f"Invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # an integer beyond sys.get_int_max_str_digits()
        raise InvalidJson(f"Invalid JSON: {exc}") from None
    _check_storable(data)
    return data


def _check_storable(data: Any) -> None:
    # Iterative: the depth check must not itself recurse.
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise InvalidJson("JSON strings must not contain NUL (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson("JSON strings must not contain lone surrogates") from None


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601; a naive timestamp is UTC (documented). Returns an aware UTC datetime, or raises
    ``ValueError`` (pydantic turns it into a 422) for text that is not one or an instant outside
    the calendar once in UTC (``9999-12-31T23:59:59-23:59``)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an ISO 8601 date-time") from None
    else:
        raise ValueError("must be an ISO 8601 date-time string")
    return to_utc(parsed)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC (naive = UTC), or ``ValueError`` when that falls outside the calendar."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date-time out of range once converted to UTC") from None


UtcDateTime = Annotated[datetime, AfterValidator(to_utc)]
"""A date-time parameter or field, converted to UTC (422 when it cannot be)."""


def invalid_query(name: str, message: str) -> RequestValidationError:
    """A 422 naming one query parameter, in the usual ``{loc, msg, type}`` shape."""
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


def _id_cursor(
    cursor: Annotated[
        str | None,
        Query(pattern="^[0-9]{1,19}$", description="`next_cursor` of the previous page."),
    ] = None,
) -> int | None:
    if cursor is None:
        return None
    value = ascii_int(cursor)
    if value is None or value > MAX_ROW_ID:
        raise invalid_query("cursor", "Invalid cursor: pass back a next_cursor")
    return value


IdCursor = Annotated[int | None, Depends(_id_cursor)]
"""The ``cursor`` query parameter of a list ordered by a row id (422 unless it can be one)."""


def row_id_exists(value: int) -> bool:
    """Whether a row could have this id (a path id outside the range is a 404, not a query)."""
    return 1 <= value <= MAX_ROW_ID
