"""Run simulators in-process on loopback ports, and wire a hub's connections to them.

``Sandbox(...).start()`` serves every selected simulator with uvicorn on one background thread
(one event loop) and returns ``{name: base_url}``; ``stop()`` shuts them down. With ``port=0`` each
gets a free port; with ``port=P`` they get fixed ports ``P + offset`` in :data:`NAMES` order
(hubspot P, nango P+1, acme P+2, events P+3, todo P+4), whichever are selected.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from switchboard.sandbox import acme as acme_mod
from switchboard.sandbox import hubspot as hubspot_mod
from switchboard.sandbox import todo as todo_mod
from switchboard.sandbox.acme import AcmeSimulator, AcmeWebhookSettings
from switchboard.sandbox.events import FEED_PATH, EventFeedSimulator, FeedSettings, find_fever_dir
from switchboard.sandbox.faults import Faults
from switchboard.sandbox.hubspot import HubSpotSimulator, HubSpotWebhookSettings, TokenRegistry
from switchboard.sandbox.nango import NangoSimulator
from switchboard.sandbox.todo import TodoSimulator

NAMES = ("hubspot", "nango", "acme", "events", "todo")


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
        hubspot_token: str = hubspot_mod.PRIVATE_APP_TOKEN,
        hubspot_webhook_url: str | None = None,
        acme_webhook_url: str | None = None,
        todo_target: str | None = None,
    ) -> None:
        self.names = parse_only(only)
        self.host = host
        self.port = port
        self.tokens = TokenRegistry()
        self.hubspot: HubSpotSimulator | None = None
        self.nango: NangoSimulator | None = None
        self.acme: AcmeSimulator | None = None
        self.events: EventFeedSimulator | None = None
        self.todo: TodoSimulator | None = None
        apps: dict[str, Any] = {}
        if "hubspot" in self.names:
            self.hubspot = HubSpotSimulator(
                tokens=self.tokens,
                private_app_token=hubspot_token,
                contacts=contacts,
                seed=seed,
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
        self._apps = apps
        self._servers: dict[str, uvicorn.Server] = {}
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.urls: dict[str, str] = {}

    def start(self, timeout: float = 15.0) -> dict[str, str]:
        """Serve every selected simulator; returns ``{name: base_url}``."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        for name, app in self._apps.items():
            port = 0 if self.port == 0 else self.port + NAMES.index(name)
            config = uvicorn.Config(
                app, host=self.host, port=port, log_config=None, access_log=False, lifespan="on"
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
        for name, server in self._servers.items():
            port = server.servers[0].sockets[0].getsockname()[1]
            self.urls[name] = f"http://{shown}:{port}"
        return dict(self.urls)

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(s.serve() for s in self._servers.values()))

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


def zero_config(urls: Mapping[str, str]) -> dict[str, Any]:
    """Connections-file data (the shape of :class:`switchboard.config.HubConfig`) that wires every
    connection to the simulators at ``urls`` (as returned by :meth:`Sandbox.start`)."""
    connections: dict[str, Any] = {}
    if "hubspot" in urls:
        connections["hubspot"] = {
            "kind": "hubspot",
            "base_url": urls["hubspot"],
            "auth": {"type": "token", "token": hubspot_mod.PRIVATE_APP_TOKEN},
            "webhook_secret": hubspot_mod.CLIENT_SECRET,
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
    data: dict[str, Any] = {"connections": connections}
    if "hubspot" in connections:
        data["contacts"] = {"default_connection": "hubspot"}
        data["users"] = {"crm_connection": "hubspot"}
    return data
