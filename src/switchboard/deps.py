"""FastAPI dependencies shared by every feature: configuration, database session, API key."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.config import Config
from switchboard.connections.catalog import Entry
from switchboard.db import Database
from switchboard.errors import NotFound, Unauthorized


def get_config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit when the handler returns, roll back if it raises.

    Only ``GET``/``HEAD`` get a read transaction; everything else may write (``BEGIN IMMEDIATE``
    on SQLite, so it never fails upgrading a read lock).
    """
    db = get_db(request)
    factory = db.read_session if request.method in ("GET", "HEAD") else db.session
    async with factory() as session:
        yield session


async def require_api_key(request: Request) -> None:  # async: no thread pool hop
    """Accept ``X-API-Key: k`` or ``Authorization: Bearer k`` for any configured key.

    Every key is compared (in constant time) so the time taken does not reveal which one matched
    or how much of it. With no key configured the server is open (the CLI allows that only on a
    loopback address).
    """
    keys = get_config(request).api_keys
    if not keys:
        return
    presented = request.headers.get("x-api-key")
    if not presented:  # absent or empty: the bearer form may carry it
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            presented = credentials.strip()
    if not presented:
        raise Unauthorized()
    candidate = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode())
    if not matched:
        raise Unauthorized()


async def _config(request: Request) -> Config:
    # Async on purpose: FastAPI runs plain-function dependencies in a thread pool.
    return get_config(request)


# scope="function": the transaction ends before the response is sent (FastAPI's default for a
# yield dependency is after it), so a 2xx is only sent for a committed change, and a client that
# reads right after it, from any process, sees the change.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
CurrentConfig = Annotated[Config, Depends(_config)]
Authenticated = [Depends(require_api_key)]


def resolve_entry(config: Config, ref: str) -> Entry:
    """Connection ``ref`` (its id or alias), or a 404 naming it."""
    entry = config.entry(ref)
    if entry is None:
        raise NotFound(f"No connection named {ref!r}")
    return entry


async def _connection_in_path(
    request: Request,
    name: Annotated[str, Path(description="A connection's id or alias.", max_length=100)],
) -> str:
    return resolve_entry(get_config(request), name).id


async def _connection_in_query(
    request: Request,
    connection: Annotated[
        str | None,
        Query(
            description="Only this connection: its id or alias (404 when there is none).",
            max_length=100,
        ),
    ] = None,
) -> str | None:
    if connection is None:
        return None
    return resolve_entry(get_config(request), connection).id


ConnectionName = Annotated[str, Depends(_connection_in_path)]
"""A ``{name}`` path parameter naming a connection by id or alias, resolved to its id (else
404)."""
ConnectionFilter = Annotated[str | None, Depends(_connection_in_query)]
"""An optional ``?connection=`` filter (id or alias), resolved to the id (else 404)."""
