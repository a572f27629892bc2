"""Run simulators in-process on loopback ports, and wire a hub's connections to them.

``Sandbox(...).start()`` serves every selected simulator with uvicorn on one background thread
(one event loop) and returns ``{name: base_url}``; ``stop()`` shuts them down. With ``port=0`` each
gets a free port; with ``port=P`` they get fixed ports ``P + offset`` in :data:`NAMES` order
(hubspot P, nango P+1, acme P+2, events P+3, todo P+4, pipedrive P+5, receiver P+6), whichever
are selected. The receiver is not a provider: it stands for the product's endpoint of outbound
change events. With ``fallback=True`` a fixed port that is taken gives way to a free one (listed
in ``moved``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from switchboard.connectors.hubspot.simulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    PRIVATE_APP_TOKEN,
    HubSpotSimulator,
    HubSpotWebhookSettings,
    TokenRegistry,
)
from switchboard.connectors.mapped_crm.simulators import acme as acme_mod
from switchboard.connectors.mapped_crm.simulators.acme import AcmeSimulator, AcmeWebhookSettings
from switchboard.connectors.pipedrive import simulator as pipedrive_mod
from switchboard.connectors.pipedrive.simulator import PipedriveSimulator
from switchboard.connectors.todo_webhooks import simulator as todo_mod
from switchboard.connectors.todo_webhooks.simulator import TodoSimulator
from switchboard.connectors.xml_feed.simulator import (
    FEED_PATH,
    EventFeedSimulator,
    FeedSettings,
    find_fever_dir,
)
from switchboard.sandbox.faults import Faults
from switchboard.sandbox.nango import NangoSimulator
from switchboard.sandbox.receiver import WebhookReceiver

NAMES = ("hubspot", "nango", "acme", "events", "todo", "pipedrive", "receiver")


def parse_only(only: str | Iterable[str] | None) -> list[str]:
    """``"hubspot,acme"`` (or a list) → validated names in :data:`NAMES` order; None → all."""
    if only is None:
        return list(NAMES)
    wanted = [p.strip() for p in only.split(",")] if isinstance(only, str) else list(only)
    wanted = [w for w in wanted if w]
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown simulator(s): {', '.join(unknown)} (use {', '.join(NAMES)})")
    if not wanted:
        raise ValueError("select at least one simulator")
    return [n for n in NAMES if n in wanted]


class Sandbox:
    """Selected simulators, built at once (so tests can reach into them) and served on start."""

    def __init__(
        self,
        only: str | Iterable[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        contacts: int = 0,
        seed: int = 0,
        faults: Faults | None = None,
        fever_dir: Path | None = None,
        hubspot_token: str = PRIVATE_APP_TOKEN,
        hubspot_webhook_url: str | None = None,
        acme_webhook_url: str | None = None,
        todo_target: str | None = None,
        pipedrive_webhook_url: str | None = None,
        fallback: bool = False,
        unique_ids: bool = False,
        verbose: bool = False,
    ) -> None:
        """``unique_ids``: HubSpot ids of contacts created while running start at a per-run
        offset (seeded contacts keep their small, deterministic ids), so a hub that keeps its
        store across restarts never sees one id stand for two different people."""
        self.names = parse_only(only)
        self.host = host
        self.port = port
        self.fallback = fallback
        self.verbose = verbose
        self.moved: dict[str, int] = {}
        self.tokens = TokenRegistry()
        self.hubspot: HubSpotSimulator | None = None
        self.nango: NangoSimulator | None = None
        self.acme: AcmeSimulator | None = None
        self.events: EventFeedSimulator | None = None
        self.todo: TodoSimulator | None = None
        self.pipedrive: PipedriveSimulator | None = None
        self.receiver: WebhookReceiver | None = None
        apps: dict[str, Any] = {}
        if "hubspot" in self.names:
            self.hubspot = HubSpotSimulator(
                tokens=self.tokens,
                private_app_token=hubspot_token,
                contacts=contacts,
                seed=seed,
                first_id=run_id_offset() if unique_ids else None,
                faults=faults,
                webhooks=HubSpotWebhookSettings(url=hubspot_webhook_url),
            )
            apps["hubspot"] = self.hubspot.app
        if "nango" in self.names:
            self.nango = NangoSimulator(self.tokens, faults=faults, seed=seed)
            apps["nango"] = self.nango.app
        if "acme" in self.names:
            self.acme = AcmeSimulator(
                faults=faults, seed=seed, webhooks=AcmeWebhookSettings(url=acme_webhook_url)
            )
            apps["acme"] = self.acme.app
        if "events" in self.names:
            self.events = EventFeedSimulator(
                FeedSettings(seed=seed), fever_dir=fever_dir or find_fever_dir(), faults=faults
            )
            apps["events"] = self.events.app
        if "todo" in self.names:
            self.todo = TodoSimulator(target=todo_target, faults=faults)
            apps["todo"] = self.todo.app
        if "pipedrive" in self.names:
            self.pipedrive = PipedriveSimulator(
                faults=faults,
                seed=seed,
                webhooks=pipedrive_mod.WebhookSettings(
                    url=pipedrive_webhook_url,
                    http_auth_user=pipedrive_mod.WEBHOOK_USER,
                    http_auth_password=pipedrive_mod.WEBHOOK_PASSWORD,
                ),
            )
            apps["pipedrive"] = self.pipedrive.app
        if "receiver" in self.names:
            self.receiver = WebhookReceiver()
            apps["receiver"] = self.receiver.app
        self._apps = apps
        self._servers: dict[str, uvicorn.Server] = {}
        self._sockets: dict[str, socket.socket] = {}
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.urls: dict[str, str] = {}

    def start(self, timeout: float = 15.0) -> dict[str, str]:
        """Serve every selected simulator; returns ``{name: base_url}``."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        for name, app in self._apps.items():
            port = 0 if self.port == 0 else self.port + NAMES.index(name)
            sock = self._bind(name, port)
            self._sockets[name] = sock
            config = uvicorn.Config(
                app,
                host=self.host,
                port=sock.getsockname()[1],
                log_config=None,
                access_log=self.verbose,
                lifespan="on",
            )
            self._servers[name] = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="switchboard-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers.values()):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox did not start: {self._error or 'timed out'}")
            time.sleep(0.01)
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        for name, sock in self._sockets.items():
            self.urls[name] = f"http://{shown}:{sock.getsockname()[1]}"
        return dict(self.urls)

    def _bind(self, name: str, port: int) -> socket.socket:
        """A listening socket bound here (not by uvicorn), so that a taken fixed port can fall
        back to a free one without a window in which another process takes it."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio turns TCP_NODELAY on only for sockets it sees as TCP, and
        # without it every kept-alive answer waits ~40 ms (Nagle against delayed ACKs).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            if port == 0 or not self.fallback:
                sock.close()
                raise RuntimeError(
                    f"sandbox {name}: cannot bind {self.host}:{port}: {exc}"
                ) from None
            sock.bind((self.host, 0))
            self.moved[name] = port
        sock.listen(2048)
        sock.setblocking(False)
        return sock

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.gather(
                *(s.serve(sockets=[self._sockets[n]]) for n, s in self._servers.items())
            )

        try:
            asyncio.run(main())
        except (
            BaseException
        ) as exc:  # SystemExit too (uvicorn exits on a busy port): start() reports it
            self._error = exc

    def stop(self, timeout: float = 10.0) -> None:
        for server in self._servers.values():
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        for sock in self._sockets.values():
            sock.close()

    def wait(self) -> None:
        """Block until the servers stop (interruptible by Ctrl-C)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_id_offset() -> int:
    """Where this run's new HubSpot ids start: ten thousand per second since 2024, so a later
    run starts past every id an earlier one could have handed out (HubSpot ids are this size)."""
    return max(1, int(time.time()) - 1_704_067_200) * 10_000


def zero_config(urls: Mapping[str, str]) -> dict[str, Any]:
    """Connections-file data (the shape of :class:`switchboard.config.HubConfig`) that wires every
    connection to the simulators at ``urls`` (as returned by :meth:`Sandbox.start`)."""
    connections: dict[str, Any] = {}
    if "hubspot" in urls:
        connections["hubspot"] = {
            "kind": "hubspot",
            "base_url": urls["hubspot"],
            "auth": {"type": "token", "token": PRIVATE_APP_TOKEN},
            "webhook_secret": CLIENT_SECRET,
        }
    if "acme" in urls:
        connections["acme"] = {
            "kind": "mapped_crm",
            "base_url": urls["acme"],
            "auth": {
                "type": "client_credentials",
                "token_url": "/token",
                "client_id": acme_mod.CLIENT_ID,
                "client_secret": acme_mod.CLIENT_SECRET,
            },
            "paths": {
                "list": acme_mod.CONTACTS,
                "item": acme_mod.CONTACTS + "/{id}",
                "create": acme_mod.CONTACTS,
            },
            "fields": {
                "firstName": "acme_first_name",
                "lastName": "acme_last_name",
                "email": "acme_email",
            },
            "rate_limit": "10/60s",
            "webhook_secret": acme_mod.WEBHOOK_SECRET,
        }
    if "events" in urls:
        connections["events"] = {
            "kind": "xml_feed",
            "url": urls["events"] + FEED_PATH,
            "interval": "30s",
            "timezone": "UTC",
        }
    if "todo" in urls:
        connections["todo"] = {"kind": "todo_webhooks", "secret": todo_mod.WEBHOOK_SECRET}
    if "pipedrive" in urls:
        connections["pipedrive"] = {
            "kind": "pipedrive",
            "base_url": urls["pipedrive"],
            "api_token": pipedrive_mod.API_TOKEN,
            "webhook_user": pipedrive_mod.WEBHOOK_USER,
            "webhook_password": pipedrive_mod.WEBHOOK_PASSWORD,
        }
    # The simulators' OAuth apps: the connect flow (POST /connect/sessions) runs offline.
    integrations: dict[str, Any] = {}
    if "hubspot" in urls:
        integrations["hubspot-app"] = {
            "provider": "hubspot",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "base_url": urls["hubspot"],
            "authorize_url": urls["hubspot"] + "/oauth/authorize",
        }
    if "pipedrive" in urls:
        integrations["pipedrive-app"] = {
            "provider": "pipedrive",
            "client_id": pipedrive_mod.CLIENT_ID,
            "client_secret": pipedrive_mod.CLIENT_SECRET,
            "base_url": urls["pipedrive"],
            "authorize_url": urls["pipedrive"] + "/oauth/authorize",
            "token_url": urls["pipedrive"] + "/oauth/token",
        }
    data: dict[str, Any] = {"connections": connections, "integrations": integrations}
    if "hubspot" in connections:
        data["contacts"] = {"default_connection": "hubspot"}
        data["users"] = {"crm_connection": "hubspot"}
    return data
