"""Pagination strategies and the record selector, as pure functions of a page's answer.

A page is asked with :func:`page_request` for a *page token* (a page number, an offset, a cursor
or a URL, as the strategy says; :func:`first_page` gives the first) and the next token is read
from its answer with :func:`next_page` (``None``: that was the last page). Tokens are JSON values,
so a sync can store one as its cursor and resume from it.
"""

from __future__ import annotations

from typing import Any

import httpx

from switchboard.connectors.crm import malformed
from switchboard.connectors.mapped_crm.paths import MISSING, parse_path
from switchboard.connectors.mapped_crm.spec import (
    CursorPagination,
    OffsetPagination,
    PagePagination,
)

PageToken = int | str | None
AnyPagination = PagePagination | OffsetPagination | CursorPagination


def first_page(pagination: AnyPagination) -> PageToken:
    if isinstance(pagination, PagePagination):
        return pagination.first_page
    if isinstance(pagination, OffsetPagination):
        return 0
    return None


def page_request(pagination: AnyPagination, token: PageToken) -> tuple[str | None, dict[str, Any]]:
    """(a URL to call instead of the list path, or ``None``; the query parameters)."""
    if isinstance(pagination, PagePagination):
        return None, {pagination.page_param: token, pagination.size_param: pagination.page_size}
    if isinstance(pagination, OffsetPagination):
        return None, {pagination.offset_param: token, pagination.limit_param: pagination.page_size}
    size = {pagination.size_param: pagination.page_size} if pagination.size_param else {}
    if token is None:
        return None, size
    if pagination.follows_url:
        return str(token), {}
    return None, {pagination.cursor_param: token, **size}


def select_records(records_path: str, body: Any, connection: str) -> tuple[list[Any], bool]:
    """(the records of a page, whether the body was a bare list where an object was expected:
    a bare list is one last page)."""
    if isinstance(body, list) and records_path:
        return body, True
    records = parse_path(records_path, allow_empty=True).read(body)
    if not isinstance(records, list):
        where = f"at {records_path!r}" if records_path else "as the body"
        raise malformed(connection, f"expected a list of records {where}", body)
    return records, False


def next_page(
    pagination: AnyPagination,
    token: PageToken,
    *,
    body: Any,
    records: list[Any],
    response: httpx.Response,
    connection: str,
) -> PageToken:
    """The token of the page after ``token``, or ``None`` after the last one."""
    if isinstance(pagination, PagePagination):
        assert isinstance(token, int)
        if pagination.next_page_path is None:
            return None if len(records) < pagination.page_size else token + 1
        value = parse_path(pagination.next_page_path).read(body)
        if value is MISSING or value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= token:
            raise malformed(connection, f"next_page {value!r} after page {token}", body)
        return value
    if isinstance(pagination, OffsetPagination):
        assert isinstance(token, int)
        return None if len(records) < pagination.page_size else token + len(records)
    if pagination.link_header:
        link = response.links.get("next", {}).get("url")
        following: Any = link if link else None
    else:
        assert pagination.cursor_path is not None
        following = parse_path(pagination.cursor_path).read(body)
        following = None if following is MISSING or following in (None, "") else following
    if following is None:
        return None
    if isinstance(following, bool) or not isinstance(following, str | int):
        raise malformed(connection, f"next cursor {following!r} is not a string", body)
    result: int | str = following
    if pagination.follows_url:
        result = _same_origin(str(following), response, connection)
    if result == token:
        raise malformed(connection, f"the next cursor repeats this page's ({token!r})", body)
    return result


def _same_origin(url: str, response: httpx.Response, connection: str) -> str:
    """A next-page URL resolved against the page's own, refused when it leaves the CRM's origin:
    the connection's credentials go with it."""
    here = response.request.url
    target = here.join(url)
    if (target.scheme, target.host, target.port) != (here.scheme, here.host, here.port):
        raise malformed(connection, f"next page URL {url!r} leaves {here.scheme}://{here.host}")
    return str(target)
