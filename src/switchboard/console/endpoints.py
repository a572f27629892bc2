"""The operations console at ``/console``: server-rendered pages over the hub's own state, a
login that trades the API key for a session cookie, and two actions (sync now, replay a dead
job) that are ordinary form posts protected against cross-site requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.changes import console as change_console
from switchboard.changes import service as change_service
from switchboard.config import Config
from switchboard.connections import connect
from switchboard.connections.catalog import STATUSES, Entry
from switchboard.connections.schemas import ConnectSessionIn, EndUserIO
from switchboard.console import charts, security, sessions
from switchboard.console import service as console
from switchboard.console.security import Session
from switchboard.contacts import service as contacts_service
from switchboard.deps import CurrentConfig, DbSession, get_config, resolve_entry
from switchboard.errors import AppError, BadRequest, NotFound, Unprocessable
from switchboard.jobs import queue
from switchboard.jobs import service as jobs_service
from switchboard.models import ConnectSession, Job, User
from switchboard.settings import parse_duration
from switchboard.syncs import service as syncs_service

HERE = Path(__file__).parent
PAGES = [
    ("connections", "Connections"),
    ("jobs", "Jobs"),
    ("webhooks", "Webhooks"),
    ("events", "Events"),
    ("feed", "Feed"),
    ("tasks", "Tasks & reports"),
    ("users", "Users"),
    ("contacts", "Contacts"),
]
REFRESH_SECONDS = 5
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
JobId = Annotated[int, FastApiPath(ge=1, le=2**63 - 1)]
"""A job id as the database can hold it (BIGINT): anything else is a 422 page, not a query."""
MIN_WINDOW, MAX_WINDOW = timedelta(seconds=1), timedelta(days=366)
MAX_PAGE = 1_000_000  # an offset the database can take; nobody pages further by hand
TASK_STACK = [("completed", "#16a34a"), ("new", "#2563eb"), ("old", "#d97706")]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Runs inside the app's own lifespan, so the database is already on app.state.
    history = console.DepthHistory()
    app.state.console_depth = history
    sampler = asyncio.create_task(history.run(app.state.db), name="console-depth-sampler")
    try:
        yield
    finally:
        # Stopped, not cancelled: a sample in flight finishes and returns its connection.
        history.stop()
        await sampler


class ConsoleRoute(APIRoute):
    """Console routes answer errors with a page, not the API's JSON body: an operator who
    replays a job that is no longer dead, or follows a stale link, sees what happened and a way
    back. Redirects (the login) pass through."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            # PostgreSQL refuses NUL in text, and no console address has a use for it.
            if "\x00" in request.scope["path"] or b"%00" in request.scope["query_string"]:
                return error_page(request, 400, "The address contains a NUL character.", None)
            try:
                return await handle(request)
            except AppError as exc:
                return error_page(request, exc.status_code, exc.message, exc.headers)
            except HTTPException as exc:
                if exc.status_code < 400:
                    raise
                return error_page(request, exc.status_code, str(exc.detail), exc.headers)
            except RequestValidationError:
                return error_page(request, 422, "The address or form is not valid.", None)

        return handler


router = APIRouter(
    prefix="/console", include_in_schema=False, lifespan=_lifespan, route_class=ConsoleRoute
)


# --- rendering ----------------------------------------------------------------------------------


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(value: datetime | str | None) -> str:
    if value is None:
        return "never"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    seconds = (datetime.now(UTC) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)}{unit}"
            break
    else:
        text = f"{int(seconds)}s"
    return f"in {text}" if future else f"{text} ago"


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@cache
def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value, provider data included, is escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, ago=_ago, span=_span, segment=lambda v: quote(str(v), safe=""))
    return env


def render(
    request: Request,
    template: str,
    session: Session | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    values: dict[str, Any] = {
        "pages": PAGES,
        "csrf": session.nonce if session is not None else "",
        "login_required": bool(get_config(request).api_keys),
        "refresh": 0,
    }
    html = _templates().get_template(template).render(values | context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers.update(
        {
            "Content-Security-Policy": CSP,
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        }
    )
    if session is not None and session.cookie is not None:
        security.set_cookie(request, response, session.cookie)
    return response


def error_page(
    request: Request, status_code: int, message: str, headers: Mapping[str, str] | None
) -> HTMLResponse:
    keys = get_config(request).api_keys
    session = security.read_session(request.cookies.get(security.COOKIE), keys)
    back = "/console"
    referer = request.headers.get("referer", "")
    if referer.startswith(f"{request.base_url}console"):  # same site, console pages only
        back = referer.removeprefix(str(request.base_url).rstrip("/"))
    response = render(
        request,
        "error.html",
        session,
        status_code=status_code,
        page="error",
        heading=f"{status_code} · {_phrase(status_code)}",
        message=message,
        back=back,
    )
    for name, value in (headers or {}).items():
        response.headers.setdefault(name, value)
    return response


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:  # a status outside the standard list still gets its page
        return "Error"


def redirect(path: str, **params: str | int) -> RedirectResponse:
    query = f"?{urlencode(params)}" if params else ""
    return RedirectResponse(f"/console{path}{query}", status_code=status.HTTP_303_SEE_OTHER)


# --- session ------------------------------------------------------------------------------------


async def live_session(request: Request, db: AsyncSession) -> Session | None:
    """The session of the request's cookie, if it is well formed, signed by a configured key
    and not ended (logout) since."""
    keys = get_config(request).api_keys
    session = security.read_session(request.cookies.get(security.COOKIE), keys)
    if session is None or (keys and not await sessions.is_live(db, session)):
        return None
    return session


async def current_session(request: Request, db: DbSession) -> Session:
    """The operator's session; without one, a redirect to the login form (or, with no API key
    configured, a new open session)."""
    session = await live_session(request, db)
    if session is not None:
        return session
    if get_config(request).api_keys:
        raise HTTPException(
            status.HTTP_303_SEE_OTHER, "Login required", headers={"Location": "/console/login"}
        )
    value, session = security.new_cookie(None)
    return replace(session, cookie=value)


ConsoleSession = Annotated[Session, Depends(current_session)]


async def posted_form(request: Request, session: ConsoleSession) -> dict[str, str]:
    """The body of a console form, after the cross-site checks."""
    security.refuse_cross_site(request)
    form = await security.read_form(request)
    security.check_csrf(session, form)
    return form


PostedForm = Annotated[dict[str, str], Depends(posted_form)]


@router.get("")
async def home() -> RedirectResponse:
    return redirect("/connections")


@router.get("/login")
async def login_form(request: Request, db: DbSession) -> Response:
    if not get_config(request).api_keys or await live_session(request, db) is not None:
        return redirect("/connections")
    return render(request, "login.html", None, page="login", error=None)


@router.post("/login")
async def login(request: Request, db: DbSession) -> Response:
    security.refuse_cross_site(request)
    keys = get_config(request).api_keys
    if not keys:
        return redirect("/connections")
    form = await security.read_form(request)
    key = security.check_key(keys, form.get("api_key", ""))
    if key is None:
        return render(
            request,
            "login.html",
            None,
            page="login",
            error="That API key is not valid.",
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    value, session = security.new_cookie(key)
    await sessions.start(db, session)
    response = redirect("/connections")
    security.set_cookie(request, response, value)
    return response


@router.post("/logout")
async def logout(
    request: Request, session: ConsoleSession, form: PostedForm, db: DbSession
) -> Response:
    if get_config(request).api_keys:
        await sessions.end(db, session)
    response = redirect("/login")
    security.clear_cookie(request, response)
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    files = _static_files()
    if name not in files:
        raise NotFound(f"No console asset {name!r}")
    body, media_type = files[name]
    return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=300"})


@cache
def _static_files() -> dict[str, tuple[bytes, str]]:
    # A fixed list read once: the URL never becomes a path.
    return {
        p.name: (p.read_bytes(), STATIC_TYPES[p.suffix])
        for p in (HERE / "static").iterdir()
        if p.suffix in STATIC_TYPES
    }


# --- connections --------------------------------------------------------------------------------


CONNECTIONS_PAGE = 50
RUNS_SHOWN, JOBS_SHOWN, DELIVERIES_SHOWN = 20, 50, 25


@router.get("/connections")
async def connections_page(
    request: Request,
    session: ConsoleSession,
    db: DbSession,
    config: CurrentConfig,
    status: str = "",
    integration: str = "",
    q: str = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    found = await console.connection_page(
        db,
        config,
        status=status or None,
        integration=integration or None,
        q=q or None,
        limit=CONNECTIONS_PAGE,
        offset=(page - 1) * CONNECTIONS_PAGE,
    )
    return render(
        request,
        "connections.html",
        session,
        page="connections",
        found=found,
        statuses=STATUSES,
        status=status,
        integration=integration,
        q=q,
        page_no=page,
        more=found.matched > page * CONNECTIONS_PAGE,
        first=(page - 1) * CONNECTIONS_PAGE + 1,
        can_connect=bool(console.oauth_integrations(config.catalog.integrations)),
        refresh=REFRESH_SECONDS,
    )


@router.get("/connections/{ref}")
async def connection_page(
    ref: str,
    request: Request,
    session: ConsoleSession,
    db: DbSession,
    config: CurrentConfig,
    queued: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    entry = resolve_entry(config, ref)
    job = await db.get(Job, queued) if queued is not None else None
    if job is not None and job.payload.get("connection") != entry.id:
        job = None  # a hand-edited address names another connection's job: no notice
    view = await console.connection_view(
        db,
        config,
        getattr(request.app.state, "outbound", None),
        entry,
        runs=RUNS_SHOWN,
        jobs=JOBS_SHOWN,
        deliveries=DELIVERIES_SHOWN,
    )
    return render(
        request,
        "connection.html",
        session,
        page="connections",
        c=view,
        queued=job,
        standard=STANDARD_SUMMARY,
        refresh=REFRESH_SECONDS,
    )


STANDARD_SUMMARY = ("last_run", "last_success_at", "failed_runs_since_success", "skipped", "errors")
"""The sync summary's keys every syncing connection has; the rest are the store's own counts."""


@router.post("/connections/{ref}/sync")
async def sync_now(
    ref: str, form: PostedForm, db: DbSession, config: CurrentConfig
) -> RedirectResponse:
    entry = resolve_entry(config, ref)
    syncs_service.resolve(config, entry.id, to_run=True)  # a paused connection is refused
    job_id = await syncs_service.enqueue_sync(db, entry.id, full=form.get("full") == "1")
    return redirect(f"/connections/{quote(entry.id, safe='')}", queued=job_id)


# --- connect links ------------------------------------------------------------------------------


def _connect_url(request: Request, config: CurrentConfig, token: str) -> str:
    """The link as ``POST /connect/sessions`` answers it: under ``SWITCHBOARD_PUBLIC_URL``
    behind a proxy, else the address the console was reached at."""
    return connect.link(
        connect.public_base(config.settings.public_url, str(request.base_url)), token
    )


def _link_page(
    request: Request,
    session: Session,
    config: Config,
    token: str,
    row: ConnectSession,
    integration: str,
    connection: Entry | None,
) -> HTMLResponse:
    """The page that shows a new connect link (to copy or open)."""
    return render(
        request,
        "connect_link.html",
        session,
        page="connections",
        url=_connect_url(request, config, token),
        row=row,
        integration=integration,
        connection=connection,
    )


def _connect_form(
    request: Request,
    session: Session,
    config: CurrentConfig,
    *,
    values: Mapping[str, str],
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "connect.html",
        session,
        status_code=status_code,
        page="connections",
        integrations=console.oauth_integrations(config.catalog.integrations),
        values=values,
        error=error,
    )


CONNECT_FIELDS = (
    "integration",
    "end_user_id",
    "end_user_email",
    "organisation",
    "tags",
    "return_url",
)


@router.get("/connect")
async def connect_form(
    request: Request, session: ConsoleSession, config: CurrentConfig, integration: str = ""
) -> HTMLResponse:
    return _connect_form(request, session, config, values={"integration": integration})


@router.post("/connect")
async def create_connect_link(
    request: Request,
    session: ConsoleSession,
    form: PostedForm,
    db: DbSession,
    config: CurrentConfig,
) -> HTMLResponse:
    """A connect link for a new connection. The page answers the post itself (no redirect):
    the token is shown once, like the API's answer, and never stored in a URL."""
    values = {k: form.get(k, "") for k in CONNECT_FIELDS}
    if any("\x00" in v for v in values.values()):  # PostgreSQL refuses NUL in text
        return _connect_form(
            request,
            session,
            config,
            values={k: v.replace("\x00", "") for k, v in values.items()},
            error="A field contains a NUL character.",
            status_code=422,
        )
    try:
        body = ConnectSessionIn(
            integration=values["integration"],
            end_user=EndUserIO(
                id=values["end_user_id"].strip() or None,
                email=values["end_user_email"].strip() or None,
                organisation=values["organisation"].strip() or None,
            ),
            tags=[t.strip() for t in values["tags"].split(",") if t.strip()],
            return_url=values["return_url"].strip() or None,
        )
        integ = connect.oauth_integration(config.catalog.integrations, body.integration)
        connect.check_return_url(body.return_url)  # urlsplit's own refusals too ("http://[")
    except ValidationError as exc:
        problem = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return _connect_form(
            request, session, config, values=values, error=problem, status_code=422
        )
    except Unprocessable as exc:
        return _connect_form(
            request, session, config, values=values, error=exc.message, status_code=422
        )
    token, row = await connect.new_session(
        db,
        integration=integ.name,
        end_user=body.end_user,
        tags=body.tags,
        return_url=body.return_url,
        connection=None,
    )
    return _link_page(request, session, config, token, row, integ.name, None)


@router.post("/connections/{ref}/reauthorise")
async def reauthorise(
    ref: str,
    request: Request,
    session: ConsoleSession,
    form: PostedForm,
    db: DbSession,
    config: CurrentConfig,
) -> HTMLResponse:
    """A connect link bound to this connection: completing it replaces the connection's
    credentials (and clears ``needs_reauth``) instead of creating another one."""
    entry = resolve_entry(config, ref)
    if entry.integration is None:
        raise Unprocessable(f"Connection {entry.alias!r} belongs to no integration")
    integ = connect.oauth_integration(config.catalog.integrations, entry.integration)
    user = entry.end_user
    token, row = await connect.new_session(
        db,
        integration=integ.name,
        end_user=EndUserIO(id=user.id, email=user.email, organisation=user.organisation),
        tags=list(entry.tags),
        return_url=None,
        connection=entry.id,
    )
    return _link_page(request, session, config, token, row, integ.name, entry)


# --- jobs ---------------------------------------------------------------------------------------


def _depth_chart(request: Request, now: dict[tuple[str, str], int]) -> charts.Chart:
    history: console.DepthHistory | None = getattr(request.app.state, "console_depth", None)
    samples = list(history.samples) if history is not None else []
    points = [*[(s.at, s.counts) for s in samples], (datetime.now(UTC).timestamp(), now)]
    series: dict[str, list[tuple[float, int]]] = {}
    for kind, state in sorted({k for _, counts in points for k in counts}):
        series[f"{kind} · {state}"] = [(at, counts.get((kind, state), 0)) for at, counts in points]
    return charts.time_lines(series)


@router.get("/jobs")
async def jobs_page(request: Request, session: ConsoleSession, db: DbSession) -> HTMLResponse:
    depth = {(kind, state): n for kind, state, n in await queue.depth(db)}
    kinds = sorted({kind for kind, _ in depth})
    return render(
        request,
        "jobs.html",
        session,
        page="jobs",
        depth=depth,
        kinds=kinds,
        states=["pending", "running", "dead"],
        chart=_depth_chart(request, depth),
        sample_every=console.SAMPLE_EVERY,
        dead=await console.dead_jobs(db, limit=100),
        recent=await console.recent_jobs(db, limit=25),
        refresh=REFRESH_SECONDS,
    )


@router.get("/jobs/{job_id}")
async def job_page(
    job_id: JobId, request: Request, session: ConsoleSession, db: DbSession, replayed: int = 0
) -> HTMLResponse:
    job = await jobs_service.get_job(db, job_id)
    return render(
        request,
        "job.html",
        session,
        page="jobs",
        job=job,
        replayed=bool(replayed),
        refresh=REFRESH_SECONDS if job.state in ("pending", "running") else 0,
    )


@router.post("/jobs/{job_id}/replay")
async def replay(job_id: JobId, form: PostedForm, db: DbSession) -> RedirectResponse:
    await jobs_service.retry_job(db, job_id)
    return redirect(f"/jobs/{job_id}", replayed=1)


# --- webhooks, feed -----------------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks_page(
    request: Request, session: ConsoleSession, db: DbSession, config: CurrentConfig
) -> HTMLResponse:
    return render(
        request,
        "webhooks.html",
        session,
        page="webhooks",
        groups=await console.deliveries(db, config, per_connection=25),
        refresh=REFRESH_SECONDS,
    )


@router.get("/events")
async def events_page(
    request: Request, session: ConsoleSession, db: DbSession, resent: str = ""
) -> HTMLResponse:
    return render(
        request,
        "events.html",
        session,
        page="events",
        views=await change_console.subscriptions(db),
        resent=resent[:40],
        refresh=REFRESH_SECONDS,
    )


@router.post("/events/{event_id}/resend")
async def resend_event(
    event_id: str, form: PostedForm, db: DbSession, config: CurrentConfig
) -> RedirectResponse:
    row = await change_service.get_event(db, change_service.parse_public_id(event_id) or 0)
    sub = await change_service.get_subscription(db, form.get("subscription", ""))
    if row is None or sub is None:
        raise NotFound(f"No event {event_id!r} for that subscription")
    attempts = len(config.settings.events_retry_schedule)
    job = change_service.delivery_job(sub, row.id, row.subject, attempts=attempts)
    await queue.enqueue_many(db, [job])
    return redirect("/events", resent=event_id)


@router.get("/feed")
async def feed_page(
    request: Request, session: ConsoleSession, db: DbSession, config: CurrentConfig
) -> HTMLResponse:
    return render(
        request,
        "feed.html",
        session,
        page="feed",
        feeds=await console.feeds(db, config, runs=10),
        refresh=REFRESH_SECONDS,
    )


# --- tasks and reports --------------------------------------------------------------------------


@router.get("/tasks")
async def tasks_page(
    request: Request,
    session: ConsoleSession,
    db: DbSession,
    config: CurrentConfig,
    q: str = "",
    user: str = "",
    window: str = "",
    windows: Annotated[int, Query(ge=1, le=48)] = 12,
) -> HTMLResponse:
    error = None
    every = config.hub.reports.interval
    if window:
        try:
            every = parse_duration(window)
        except (ValueError, OverflowError):
            error = f"Not a duration: {window!r} (try 60s, 15m, 1h, 1d)."
        if not MIN_WINDOW <= every <= MAX_WINDOW:
            every, error = config.hub.reports.interval, "A window is between 1s and 366d."
    rows = await console.report_windows(db, every=every, count=windows, user_id=user or None)
    chart = charts.stacked_bars(
        [
            (
                r.end.strftime("%H:%M" if every < timedelta(days=1) else "%m-%d"),
                {
                    "completed": r.completed,
                    "new": r.new,
                    "old": r.old,
                },
            )
            for r in rows
        ],
        TASK_STACK,
    )
    return render(
        request,
        "tasks.html",
        session,
        page="tasks",
        q=q,
        user=user,
        window=window,
        windows=windows,
        every=every,
        error=error,
        counts=await console.task_counts(db, q=q or None, limit=200),
        latest=await console.latest_tasks(db, user_id=user or None, limit=20),
        report_rows=rows,
        chart=chart,
    )


# --- users and contacts -------------------------------------------------------------------------

USERS_PAGE = 50


@router.get("/users")
async def users_page(
    request: Request,
    session: ConsoleSession,
    db: DbSession,
    config: CurrentConfig,
    q: str = "",
    state: str = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    found = await console.users(
        db,
        q=q or None,
        sync_state=state or None,
        limit=USERS_PAGE + 1,
        offset=(page - 1) * USERS_PAGE,
    )
    return render(
        request,
        "users.html",
        session,
        page="users",
        q=q,
        state=state,
        states=["pending", "synced", "failed", "dead"],
        counts=await console.user_sync_counts(db),
        users=found[:USERS_PAGE],
        page_no=page,
        more=len(found) > USERS_PAGE,
        crm_connection=config.hub.users.crm_connection,
    )


@router.get("/users/{user_id}")
async def user_page(
    user_id: str, request: Request, session: ConsoleSession, db: DbSession
) -> HTMLResponse:
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id!r}")
    contact = None
    if user.crm_connection and user.crm_contact_id:
        contact = await contacts_service.by_external(db, user.crm_connection, user.crm_contact_id)
    history: list[Job] = await console.user_history(db, user_id, limit=20)
    active = user.sync_state == "pending" or any(j.state in ("pending", "running") for j in history)
    return render(
        request,
        "user.html",
        session,
        page="users",
        user=user,
        contact=contact,
        history=history,
        refresh=REFRESH_SECONDS if active else 0,
    )


@router.get("/contacts")
async def contacts_page(
    request: Request,
    session: ConsoleSession,
    db: DbSession,
    config: CurrentConfig,
    q: str = "",
    connection: str = "",
    cursor: str | None = None,
    deleted: str = "",
) -> HTMLResponse:
    include_deleted = deleted == "true"
    try:
        rows, next_cursor = await contacts_service.list_contacts(
            db,
            limit=50,
            cursor=cursor or None,
            connection=connection or None,
            q=q or None,
            include_deleted=include_deleted,
        )
    except BadRequest:  # a cursor edited by hand: start over
        rows, next_cursor = [], None
    crm = sorted(n for n, c in config.connections.items() if config.provider_of(c).is_crm)
    counts = {name: await contacts_service.counts(db, name) for name in crm}
    return render(
        request,
        "contacts.html",
        session,
        page="contacts",
        q=q,
        connection=connection,
        deleted=include_deleted,
        connections=crm,
        counts=counts,
        contacts=rows,
        next_cursor=next_cursor,
    )
