"""``/integrations`` and ``/connections``: connections as data.

Every endpoint that takes a connection accepts its id or its alias. A change is committed with
a catalog version bump; this process reloads at once, the others within
``connections_poll_interval``.
"""

from __future__ import annotations

from html import escape
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.config import Config
from switchboard.connections import connect, service
from switchboard.connections.catalog import STATUSES, Entry, masked_settings
from switchboard.connections.schemas import (
    ConnectionCreate,
    ConnectionCreated,
    ConnectionList,
    ConnectionOut,
    ConnectionPatch,
    ConnectSessionIn,
    ConnectSessionOut,
    IntegrationIn,
    IntegrationList,
    IntegrationOut,
)
from switchboard.connections.store import watcher_for
from switchboard.credentials import load_secret_box
from switchboard.deps import (
    Authenticated,
    ConnectionName,
    CurrentConfig,
    DbSession,
    get_db,
    resolve_entry,
)
from switchboard.errors import Unprocessable
from switchboard.http import Outbound
from switchboard.models import Integration
from switchboard.openapi import ERRORS
from switchboard.syncs.service import connection_summary

router = APIRouter(prefix="/connections", tags=["connections"], dependencies=Authenticated)
integrations_router = APIRouter(
    prefix="/integrations", tags=["connections"], dependencies=Authenticated
)


async def _out(
    request: Request, session: AsyncSession, config: Config, entry: Entry, *, detail: bool
) -> ConnectionOut:
    if not detail:
        return ConnectionOut.of(entry)
    outbound: Outbound | None = getattr(request.app.state, "outbound", None)
    status = await outbound.status(entry.id) if outbound and entry.provider.outbound else None
    out = ConnectionOut.of(entry, status)
    out.settings = masked_settings(entry.settings)
    out.sync = await connection_summary(session, config, entry.id) or None
    return out


async def _reloaded(request: Request, config: Config) -> None:
    """This process sees its own change at once (the others at their next check)."""
    watcher, _ = watcher_for(config, get_db(request))
    await watcher.check()


@router.get("", response_model=ConnectionList, responses=ERRORS(401, 400, 422))
async def list_connections(
    request: Request,
    session: DbSession,
    config: CurrentConfig,
    end_user: Annotated[str | None, Query(max_length=200, description="End user id.")] = None,
    tag: Annotated[list[str] | None, Query(description="Has every one of these tags.")] = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
    integration: Annotated[str | None, Query(max_length=100)] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    detail: Annotated[
        bool, Query(description="Add each one's outbound and sync state (slower).")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> ConnectionList:
    """Connections by id, filtered; page with ``cursor=next_cursor``."""
    after = service.decode_cursor(cursor) if cursor else None
    wanted = set(tag or ())
    items = [
        e
        for e in sorted(config.catalog.entries(), key=lambda e: e.id)
        if (after is None or e.id > after)
        and (end_user is None or e.end_user.id == end_user)
        and wanted <= set(e.tags)
        and (status is None or e.status == status)
        and (integration is None or e.integration == integration)
        and (kind is None or e.settings.kind == kind)
    ]
    page, more = items[:limit], len(items) > limit
    return ConnectionList(
        items=[await _out(request, session, config, e, detail=detail) for e in page],
        next_cursor=service.encode_cursor(page[-1].id) if more else None,
    )


@router.post("", status_code=201, response_model=ConnectionCreated, responses=ERRORS(401, 409, 422))
async def create_connection(
    body: ConnectionCreate, request: Request, config: CurrentConfig
) -> ConnectionCreated:
    """Add an end customer's account to an integration (its schedules start in every process)."""
    box = load_secret_box(config.settings)
    async with get_db(request).session() as session:
        row = await service.create(session, box, body)
        created = ConnectionCreated(id=row.id, alias=row.alias)
    await _reloaded(request, config)
    return created


@router.get("/{name}", response_model=ConnectionOut, responses=ERRORS(401, 404))
async def get_connection(
    name: ConnectionName, request: Request, session: DbSession, config: CurrentConfig
) -> ConnectionOut:
    entry = config.catalog.get(name)
    assert entry is not None  # ConnectionName resolved it
    return await _out(request, session, config, entry, detail=True)


@router.patch("/{name}", response_model=ConnectionOut, responses=ERRORS(401, 404, 409, 422))
async def patch_connection(
    name: ConnectionName, body: ConnectionPatch, request: Request, config: CurrentConfig
) -> ConnectionOut:
    """Rename, re-tag, pause (``status: paused``) or resume (``ok``), change settings or
    credentials. Takes effect in every process without a restart."""
    box = load_secret_box(config.settings)
    async with get_db(request).session() as session:
        await service.patch(session, box, name, body)
    await _reloaded(request, config)
    entry = config.catalog.get(name)
    assert entry is not None
    return ConnectionOut.of(entry)


@router.delete("/{name}", status_code=204, responses=ERRORS(401, 404, 409))
async def delete_connection(
    name: ConnectionName,
    request: Request,
    config: CurrentConfig,
    keep_data: Annotated[
        bool, Query(description="Keep its synced contacts, runs, tasks and plans.")
    ] = False,
) -> Response:
    """Stop its schedules, cancel its pending jobs, erase its credentials and budgets, and
    delete its synced data (unless ``keep_data``)."""
    async with get_db(request).session() as session:
        await service.remove(session, name, keep_data=keep_data)
    await _reloaded(request, config)
    return Response(status_code=204)


@integrations_router.get("", response_model=IntegrationList, responses=ERRORS(401))
async def list_integrations(session: DbSession) -> IntegrationList:
    return IntegrationList(items=await service.list_integrations(session))


@integrations_router.post(
    "", status_code=201, response_model=IntegrationOut, responses=ERRORS(401, 409, 422)
)
async def put_integration(
    body: IntegrationIn, request: Request, config: CurrentConfig, response: Response
) -> IntegrationOut:
    """Create an integration (201), or replace one made through the API (200)."""
    box = load_secret_box(config.settings)
    async with get_db(request).session() as session:
        existed = await session.get(Integration, body.name) is not None
        row = await service.put_integration(session, box, body)
        out = service.integration_out(row)
    if existed:
        response.status_code = 200
    await _reloaded(request, config)
    return out


# --- the connect flow --------------------------------------------------------------------------

connect_router = APIRouter(tags=["connect"])


def _base_url(request: Request, config: Config) -> str:
    return connect.public_base(config.settings.public_url, str(request.base_url))


@connect_router.post(
    "/connect/sessions",
    status_code=201,
    response_model=ConnectSessionOut,
    responses=ERRORS(401, 404, 422),
    dependencies=Authenticated,
)
async def create_connect_session(
    body: ConnectSessionIn, request: Request, config: CurrentConfig
) -> ConnectSessionOut:
    """A single-use link (valid 30 minutes) that lets an end user connect their account to an
    OAuth integration — or, with ``connection``, re-authorise that connection."""
    integ = connect.oauth_integration(config.catalog.integrations, body.integration)
    connect.check_return_url(body.return_url)
    target = None
    if body.connection is not None:
        entry = resolve_entry(config, body.connection)
        if entry.integration != integ.name:
            raise Unprocessable(
                f"Connection {body.connection!r} is not of integration {integ.name!r}",
                loc=("body", "connection"),
            )
        target = entry.id
    async with get_db(request).session() as session:
        token, row = await connect.new_session(
            session,
            integration=integ.name,
            end_user=body.end_user,
            tags=body.tags,
            return_url=body.return_url,
            connection=target,
        )
    return ConnectSessionOut(
        token=token, url=connect.link(_base_url(request, config), token), expires_at=row.expires_at
    )


def _page(request: Request, status: int, title: str, message: str) -> Response:
    """A page for the end user's browser; a JSON error for a client that does not ask for
    HTML (a script following the link, a monitor)."""
    headers = {"Cache-Control": "no-store"}
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{escape(title)} · Switchboard</title>"
        "<body style='font-family:system-ui;max-width:36rem;margin:4rem auto'>"
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=headers)


@connect_router.get(
    "/connect/{token}",
    response_class=HTMLResponse,
    responses={302: {"description": "To the provider's authorize page"}, 404: {}, 410: {}},
)
async def open_connect_link(
    token: Annotated[str, PathParam(max_length=200)], request: Request, config: CurrentConfig
) -> Response:
    """Open a connect link: on to the provider's consent page (single use)."""
    callback = _base_url(request, config) + connect.CALLBACK_PATH
    try:
        url = await connect.start(
            get_db(request),
            load_secret_box(config.settings),
            config.catalog.integrations,
            token,
            callback,
        )
    except connect.FlowError as exc:
        return _page(request, exc.status, exc.title, exc.message)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def _token_client() -> httpx.AsyncClient:
    """For the code exchange and the account lookup: bounded, no redirects followed."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(15.0), limits=httpx.Limits(max_connections=10), follow_redirects=False
    )


@connect_router.get(
    connect.CALLBACK_PATH,
    response_class=HTMLResponse,
    responses={302: {"description": "To the connect session's return_url"}, 400: {}, 502: {}},
)
async def oauth_callback(request: Request, config: CurrentConfig) -> Response:
    """Where the provider sends the browser back: the code is exchanged, the connection made
    or re-authorised, and the browser sent to the ``return_url``."""
    params = {k: v[:4000] for k, v in request.query_params.items()}
    outbound: Outbound = request.app.state.outbound
    http = outbound.plain_client("connect", _token_client)
    try:
        done = await connect.finish(
            get_db(request),
            load_secret_box(config.settings),
            config.catalog.integrations,
            http,
            params,
        )
    except connect.FlowError as exc:
        return _page(request, exc.status, exc.title, exc.message)
    await _reloaded(request, config)
    if done.return_url is None:
        verb = "connected" if done.outcome == "connected" else "re-authorised"
        message = f"Connection {done.alias} is {verb}. You can close this page."
        return _page(request, 200, "Connected", message)
    parts = urlsplit(done.return_url)
    extra = urlencode({"connection": done.connection, "outcome": done.outcome})
    query = "&".join(p for p in (parts.query, extra) if p)
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})
