"""The ``switchboard`` command."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import structlog
import typer
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from switchboard.config import (
    SANDBOX_PORT,
    SANDBOX_URLS_ENV,
    Config,
    is_zero_config,
    load_config,
    running_sandbox,
    sandbox_state_path,
    with_sandbox,
    with_zero_config,
)
from switchboard.db import Database
from switchboard.logs import configure_logging
from switchboard.metrics import MULTIPROC_DIR_ENV, prepare_multiprocess_dir
from switchboard.settings import ConfigError, is_loopback, mask_urls

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Switchboard integration hub.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration.")
jobs_app = typer.Typer(no_args_is_help=True, help="Durable jobs.")
report_app = typer.Typer(no_args_is_help=True, help="Reports.")
credentials_app = typer.Typer(no_args_is_help=True, help="Stored credentials.")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(jobs_app, name="jobs")
app.add_typer(report_app, name="report")
app.add_typer(credentials_app, name="credentials")

log = structlog.get_logger("switchboard.cli")
T = TypeVar("T")

EXIT_CONFIG = 2


class _Options:
    debug = False  # --debug: start-up failures show their traceback too


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of start-up failures.")
    ] = False,
) -> None:
    _Options.debug = debug


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def check_port_free(host: str, port: int) -> None:
    """Exit 2 naming the address when ``host:port`` cannot be bound (checked before anything
    else starts, so a taken port does not leave simulators or migrations half started)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        fail(f"cannot listen on {host}:{port} (--host): {exc}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            fail(f"cannot listen on {host}:{port} (--host/--port): {reason}")


def database_problem(exc: BaseException) -> str:
    """The cause of a failed connection, in a few words (the driver's own message)."""
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(cause, socket.gaierror):
        return "unknown host name"
    if isinstance(cause, TimeoutError):
        return "connection timed out"
    text = (str(cause) or type(cause).__name__).splitlines()[0]
    if "unable to open database file" in text:
        text += " (does its folder exist, and may this user write there?)"
    return text[:300]


async def check_database(db: Database) -> None:
    """Connect, and on SQLite take the write lock once: fails early, with the driver's error,
    when the database is unreachable, missing, or (SQLite) not writable."""
    await db.ping()
    if db.is_sqlite:
        async with db.write_engine.begin():  # BEGIN IMMEDIATE (see db._configure_sqlite)
            pass


def load(*, zero_config_defaults: bool = True) -> Config:
    """Load and validate settings and the connections file, or exit 2 naming the bad field.

    With no connections file (zero-config), the connections are the sandbox's, as the running
    ``serve`` wired them (see :func:`switchboard.config.with_zero_config`)."""
    try:
        config = load_config()
    except ConfigError as exc:
        fail(str(exc))
    configure_logging(config.settings)
    return with_zero_config(config, defaults=zero_config_defaults)


def open_db(config: Config) -> Database:
    s = config.settings
    return Database(s.database_url, schema=s.database_schema, pool_size=s.database_pool_size)


class _DatabaseUnusable(Exception):
    pass


def _check_sqlite_folder(url: str) -> None:
    # Before opening: aiosqlite's thread outlives a failed open and complains at exit.
    path = make_url(url).database
    if url.startswith("sqlite") and path and path != ":memory:" and not path.startswith("file:"):
        folder = Path(path).resolve().parent
        if not folder.is_dir():
            state = "is not a folder" if folder.exists() else "does not exist"
            raise FileNotFoundError(f"{folder} {state}")


def run_db(config: Config, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on the configured database; an unusable database exits 2 with one line."""

    async def main() -> T:
        db = open_db(config)
        try:
            try:
                _check_sqlite_folder(db.url)
                await check_database(db)
            except (OSError, SQLAlchemyError) as exc:
                raise _DatabaseUnusable(database_problem(exc)) from exc
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except _DatabaseUnusable as exc:
        if _Options.debug:
            raise
        url = make_url(config.settings.database_url).render_as_string(hide_password=True)
        fail(f"cannot use the database {url} (SWITCHBOARD_DATABASE_URL): {exc}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
    no_runtime: Annotated[
        bool, typer.Option("--no-runtime", help="API only: run no jobs or schedules here.")
    ] = False,
    no_demo: Annotated[
        bool,
        typer.Option("--no-demo", help="Zero-config: start the simulators empty and quiet."),
    ] = False,
    sandbox_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65529,
            help="Zero-config: first simulator port (hubspot P … pipedrive P+5, receiver P+6); "
            "a taken one moves.",
        ),
    ] = SANDBOX_PORT,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also print uvicorn's and the simulators' lines.")
    ] = False,
) -> None:
    """Run the HTTP API (and, unless --no-runtime, the background jobs and schedules).

    With no connections file (zero-config) it also runs the built-in simulators, wires every
    connection to them and, unless --no-demo, fills them with demo data and a trickle of activity.
    """
    import uvicorn

    config = load(zero_config_defaults=False)
    check_port_free(host, port)
    if verbose:
        configure_logging(config.settings, verbose=True)
    if not config.api_keys:
        if not is_loopback(host):
            fail(
                f"refusing to listen on {host} without an API key: set SWITCHBOARD_API_KEYS "
                "or [server] api_keys in the connections file (or bind to 127.0.0.1)"
            )
        log.warning("no_api_key", detail="API is open to local clients only (loopback bind)")
    run_db(config, lambda db: db.upgrade())
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison
    hub_url = f"http://{local}:{port}"
    zero = is_zero_config(config)
    sandbox = traffic = None
    state_file: Path | None = None
    if zero:
        from switchboard.connectors.todo_webhooks import simulator as todo
        from switchboard.sandbox import Sandbox, demo

        sandbox = Sandbox(
            port=sandbox_port,
            fallback=True,
            unique_ids=True,
            contacts=0 if no_demo else demo.HUBSPOT_CONTACTS,
            seed=demo.SEED,
            verbose=verbose,
        )
        if not no_demo:
            demo.seed(sandbox)
        try:
            urls = sandbox.start()
        except RuntimeError as exc:
            fail(str(exc), code=1)
        config = with_sandbox(config, urls)
        # The simulators' webhook senders post to this hub (the connections are named after them).
        if sandbox.todo is not None:
            sandbox.todo.target = f"{hub_url}/webhooks/todo"
        if sandbox.hubspot is not None:
            sandbox.hubspot.webhooks.configure(url=f"{hub_url}/webhooks/hubspot")
        if sandbox.acme is not None:
            sandbox.acme.configure_webhooks(url=f"{hub_url}/webhooks/acme")
        if sandbox.pipedrive is not None:
            sandbox.pipedrive.webhooks.configure(url=f"{hub_url}/webhooks/pipedrive")
        os.environ[SANDBOX_URLS_ENV] = json.dumps(urls)
        state_file = sandbox_state_path(config.settings)
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({"pid": os.getpid(), "urls": urls, "hub": hub_url}))
        if not no_demo:
            traffic = demo.DemoTraffic(
                sandbox,
                hub_url=hub_url,
                api_key=config.api_keys[0] if config.api_keys else None,
                todo_secret=todo.WEBHOOK_SECRET,
            )
    typer.echo(banner(config, hub_url, sandbox, demo=traffic is not None), err=True)
    if no_runtime:
        os.environ["SWITCHBOARD_EMBEDDED_RUNTIME"] = "false"
    # uvicorn's "auto" loop and parser are uvloop and httptools (uvicorn[standard] installs
    # them): measured against asyncio + h11, 2.8x the requests of a raw ASGI app and 3x the hub's
    # /search (bench/search.py, bench/RESULTS.md), so nothing here overrides them.
    common: dict[str, Any] = {"host": host, "port": port, "log_config": None, "access_log": False}
    private_metrics_dir: str | None = None
    # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default handler
    # that would end the process before the cleanup below (simulators, the state file).
    terminated: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        if traffic is not None:
            traffic.start()
        if workers == 1:
            from switchboard.app import create_app

            uvicorn.run(create_app(config, runtime=not no_runtime), **common)
        else:
            # Metrics of all the processes are aggregated through files in one directory (see
            # switchboard.metrics); set before uvicorn starts its processes, which inherit it.
            if not os.environ.get(MULTIPROC_DIR_ENV):
                private_metrics_dir = tempfile.mkdtemp(prefix="switchboard-metrics-")
                os.environ[MULTIPROC_DIR_ENV] = private_metrics_dir
            prepare_multiprocess_dir(Path(os.environ[MULTIPROC_DIR_ENV]))
            # Each worker process builds its own app (and runtime) from the same environment.
            uvicorn.run("switchboard.app:create_app", factory=True, workers=workers, **common)
    except SystemExit:
        if not terminated:
            raise
    finally:
        if traffic is not None:
            traffic.stop()
        if private_metrics_dir is not None:
            shutil.rmtree(private_metrics_dir, ignore_errors=True)
        if sandbox is not None:
            sandbox.stop()
        if state_file is not None:
            state_file.unlink(missing_ok=True)
    if terminated:  # end as uvicorn meant to: by the signal
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


def banner(config: Config, hub_url: str, sandbox: Any, *, demo: bool) -> str:
    """What ``serve`` prints once at start: where everything is and how it is configured."""
    from sqlalchemy.engine import make_url

    keys = config.api_keys
    if keys:
        shown = keys[0][:4] + "…" if len(keys[0]) > 8 else "***"
        key_line = f"{shown} (X-API-Key; {len(keys)} configured, shown masked)"
        login = "log in with an API key"
    else:
        key_line = "none: open, loopback only"
        login = "open: no API key, no login"
    database = make_url(config.settings.database_url).render_as_string(hide_password=True)
    if config.source is not None:
        source = str(config.source)
    else:
        source = "none: zero-config" if sandbox is not None else "none (SWITCHBOARD_SANDBOX off)"
    lines = [
        "",
        "Switchboard",
        f"  API       {hub_url}",
        f"  docs      {hub_url}/docs",
        f"  console   {hub_url}/console  ({login})",
        f"  API key   {key_line}",
        f"  database  {database}",
        f"  config    {source}",
    ]
    if sandbox is not None:
        lines.append(
            "  SANDBOX   every connection goes to built-in simulators, not real providers: "
            "write switchboard.toml to connect real systems"
        )
        state = "on: seeded data and a trickle of activity (--no-demo: off)" if demo else "off"
        lines.append(f"  demo      {state}")
        for name, url in sandbox.urls.items():
            moved = sandbox.moved.get(name)
            note = f"  (port {moved} was taken)" if moved is not None else ""
            lines.append(f"  sandbox {name}: {url}{note}")
    else:
        lines.append("  demo      off")
    lines.append("")
    return "\n".join(lines)


@app.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this process's Prometheus metrics on this port (/metrics)."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the metrics server.")] = "127.0.0.1",
) -> None:
    """Run only the background runtime (jobs and schedules): add these to scale out."""
    from switchboard import features, metrics
    from switchboard.connections import store as connections_store

    # Zero-config: the running serve's simulators, or none (a worker never guesses ports).
    config = load(zero_config_defaults=False)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry())

    async def main(db: Database) -> None:
        await db.upgrade()
        # As the API's start: the file's connections stored (tried again by the watcher when
        # the database refused it now), every stored one loaded and kept in step.
        attached = await connections_store.attach(config, db)
        watcher, _ = connections_store.watcher_for(config, db)
        watcher.attached = attached
        runtime = features.build_runtime(config, db)
        if runtime is None:
            fail("no background runtime is available", code=1)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher.start()
        await runtime.start()
        log.info("worker_started", pid=os.getpid())
        await stop.wait()
        log.info("worker_stopping")
        await runtime.stop()
        await watcher.stop()

    run_db(config, main)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations."""
    config = load()

    async def main(db: Database) -> str | None:
        await db.upgrade(revision)
        return await db.current_revision()

    typer.echo(f"database at revision {run_db(config, main)}")


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings and connections, secrets masked."""
    config = load()
    out = {
        "source": str(config.source) if config.source else None,
        "settings": config.settings.model_dump(mode="json"),
        **config.hub.model_dump(mode="json"),
    }
    out = mask_urls(out)  # SecretStr masks declared secrets; URLs may embed more
    typer.echo(json.dumps(out, indent=2, default=str))


@report_app.command("tasks")
def report_tasks(
    start: Annotated[str, typer.Option(help="Window start (exclusive), ISO 8601; naive = UTC.")],
    end: Annotated[str, typer.Option(help="Window end (inclusive), ISO 8601; naive = UTC.")],
    user: Annotated[str | None, typer.Option(help="Only this user id.")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Default: [reports] dir.")] = None,
) -> None:
    """Write task reports for one window now (one file per user with something to report)."""
    from switchboard.parsing import parse_timestamp
    from switchboard.reports import service

    config = load()
    try:
        start_at, end_at = parse_timestamp(start), parse_timestamp(end)
    except ValueError as exc:
        fail(f"--start/--end: {exc}", code=1)
    if start_at >= end_at:
        fail("--end must be after --start", code=1)
    target = directory or config.hub.reports.dir

    async def main(db: Database) -> list[Path]:
        async with db.read_session() as session:
            reports = await service.compute(session, start_at, end_at, user_id=user)
        if user is not None and user not in reports:
            reports[user] = service.empty(user, start_at, end_at)
        return service.write_files(target, list(reports.values()), start_at, end_at)

    for path in run_db(config, main):
        typer.echo(str(path))


@credentials_app.command("rekey")
def credentials_rekey() -> None:
    """Re-encrypt stored credentials under SWITCHBOARD_SECRET_KEY (the key rotation's last step).

    Set the new key in SWITCHBOARD_SECRET_KEY and the old one in SWITCHBOARD_SECRET_KEY_PREVIOUS
    (running processes keep working with both), run this, then drop the old key.
    """
    from switchboard.credentials import SecretKeyError, load_secret_box, rekey

    config = load()
    box = load_secret_box(config.settings)

    async def main(db: Database) -> int:
        async with db.session() as session:
            return await rekey(session, box, config)

    try:
        count = run_db(config, main)
    except SecretKeyError:
        fail("a stored credential decrypts with none of the keys: nothing was changed", code=1)
    typer.echo(f"re-encrypted {count} credential(s) under the current key")


@jobs_app.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option(help="pending, running, succeeded or dead")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List jobs, newest first (--state dead: the dead-letter queue)."""
    from switchboard.jobs import service

    config = load()

    async def main(db: Database) -> list[Any]:
        async with db.read_session() as session:
            return await service.list_jobs(session, state=state, kind=kind, limit=limit)

    jobs = run_db(config, main)
    typer.echo(f"{'ID':>8}  {'STATE':<9} {'KIND':<24} {'ATT':>3}  {'KEY':<20} LAST ERROR")
    for job in jobs:
        error = (job.last_error or "").replace("\n", " ")[:60]
        key = (job.key or "")[:20]
        typer.echo(
            f"{job.id:>8}  {job.state:<9} {job.kind:<24} {job.attempts:>3}  {key:<20} {error}"
        )


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[int | None, typer.Argument(help="The dead job to replay.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Replay every dead job.")] = False,
) -> None:
    """Replay a dead job (or all of them)."""
    from switchboard.errors import AppError
    from switchboard.jobs import service

    if (job_id is None) == (not all_dead):
        fail("give a job ID or --all-dead", code=1)
    config = load()

    async def main(db: Database) -> list[int]:
        async with db.session() as session:
            if all_dead:
                return await service.retry_all_dead(session)
            assert job_id is not None
            return [(await service.retry_job(session, job_id)).id]

    try:
        ids = run_db(config, main)
    except AppError as exc:
        fail(exc.message, code=1)
    typer.echo(f"replayed {len(ids)} job(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))


from switchboard.sandbox.cli import sandbox  # noqa: E402 - the sandbox command, registered last

app.command("sandbox")(sandbox)


@app.command("sync")
def sync_command(
    name: Annotated[str, typer.Argument(help="The connection to sync.")],
    full: Annotated[
        bool, typer.Option("--full", help="Ignore what was stored last time (ETag, hashes).")
    ] = False,
) -> None:
    """Sync one connection now, in the foreground (exit 1 when the run failed)."""
    from switchboard.connections import store as connections_store
    from switchboard.errors import AppError
    from switchboard.http import Outbound
    from switchboard.syncs import service as syncs

    config = load()
    if is_zero_config(config) and running_sandbox(config.settings) is None:
        fail(
            f"no zero-config `switchboard serve` is running (data dir {config.settings.data_dir}):"
            " its simulators are what this sync reaches; start it, or write switchboard.toml",
            code=1,
        )

    def progress(message: str) -> None:
        typer.echo(f"  {message}", err=True)

    async def main(db: Database) -> Any:
        await db.upgrade()
        await connections_store.attach(config, db)  # a connection made through the API too
        outbound = Outbound(config, db)
        try:
            return await syncs.run_now(config, db, outbound, name, full=full, progress=progress)
        finally:
            await outbound.aclose()

    try:
        run, result, error = run_db(config, main)
    except AppError as exc:
        fail(exc.message, code=1)
    if error is not None:
        fail(f"sync run {run.id} of {name} failed: {error}", code=1)
    assert result is not None
    typer.echo(
        f"sync run {run.id} of {name} succeeded: {result.upserted} written, "
        f"{result.skipped} skipped, {result.errors} errors"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
