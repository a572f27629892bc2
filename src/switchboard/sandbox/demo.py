"""Demo data and a slow trickle of activity, for the zero-configuration ``switchboard serve``.

:func:`seed` fills the simulators before they start (deterministic: the same people under the same
ids on every run, so a hub that keeps its store across restarts sees the same records again).
:class:`DemoTraffic` then, once the hub answers, creates users through its API (one with an
address the HubSpot simulator refuses, so a failed propagation with HubSpot's message is visible)
and keeps a trickle going: HubSpot, ACME and Pipedrive edits (delivered to the hub as their
webhooks) and a stream of signed TODO task events, with an occasional exact redelivery and one
delivery with a bad signature (so the webhooks page shows a rejection).

Only ``serve`` in zero-configuration mode uses this; tests and ``switchboard sandbox`` never do.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import structlog

from switchboard.connectors.hubspot.simulator.store import COMPANIES, FIRST_NAMES, LAST_NAMES
from switchboard.connectors.todo_webhooks.simulator import CHORES, TodoSender, task_event
from switchboard.sandbox.receiver import PATH as RECEIVER_PATH
from switchboard.sandbox.server import Sandbox

log = structlog.get_logger("switchboard.demo")

SEED = 17
HUBSPOT_CONTACTS = 300
"""Seeded into the HubSpot simulator (ids 1..N); about one in twelve is archived."""
ACME_CONTACTS = 120
PIPEDRIVE_PERSONS = 8
"""Seeded into the Pipedrive simulator (ids 1..N)."""
USERS = 30
TODO_USERS = 5
REFUSED_DOMAIN = "bounce.example.org"
"""The HubSpot simulator refuses addresses here (400 INVALID_EMAIL), as HubSpot does some."""
_ACME_IDS = uuid.UUID("5b0c8f5e-4a61-4c36-9d7e-2f0d3c1e7a90")


def user_id(n: int) -> str:
    return f"demo-user-{n:02d}"


def seed(sandbox: Sandbox) -> None:
    """Vary and archive some of the HubSpot contacts seeded by ``Sandbox(contacts=…)``, seed the
    ACME CRM and Pipedrive, and make HubSpot refuse :data:`REFUSED_DOMAIN`. Call before
    ``start()``: nothing here fires a webhook."""
    rng = random.Random(SEED)
    if sandbox.hubspot is not None:
        hubspot = sandbox.hubspot
        hubspot.rejected_email_domains = hubspot.rejected_email_domains | {REFUSED_DOMAIN}
        with hubspot.store.lock:
            for contact in sorted(hubspot.store.contacts.values(), key=lambda c: c.id):
                roll = rng.random()
                if roll < 0.15:
                    contact.properties.pop("phone", None)
                elif roll < 0.25:
                    contact.properties.pop("company", None)
                if rng.random() < 1 / 12:
                    contact.archived_ms = contact.updated_ms
                    email = contact.properties.get("email")
                    if email and hubspot.store.by_email.get(email) == contact.id:
                        del hubspot.store.by_email[email]
    if sandbox.acme is not None:
        acme = sandbox.acme
        for n in range(ACME_CONTACTS):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            record = acme.create(
                {
                    "acme_first_name": first,
                    "acme_last_name": last,
                    "acme_email": f"{first}.{last}.{n}@acme.example.com".lower(),
                }
            )
            # The same person under the same id on every run (create() draws a random one).
            fixed = str(uuid.uuid5(_ACME_IDS, str(n)))
            with acme._lock:
                acme.contacts[fixed] = {**acme.contacts.pop(record["id"]), "id": fixed}

    if sandbox.pipedrive is not None:
        sandbox.pipedrive.store.seed(PIPEDRIVE_PERSONS, seed=SEED)


class DemoTraffic:
    """Users, edits and task events sent to a running hub, on a thread of their own (the trickle
    is demo activity: nothing needs it to survive a restart)."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        hub_url: str,
        api_key: str | None = None,
        todo_secret: str | None = None,
        tick: float = 1.0,
    ) -> None:
        self.sandbox = sandbox
        self.hub_url = hub_url.rstrip("/")
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.todo_secret = todo_secret
        self.tick = tick
        self.rng = random.Random(time.time_ns())
        # Task ids of this run: the TODO app never reuses one, so neither may a restarted demo.
        self.run_tag = format(int(time.time()), "x")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="switchboard-demo", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    async def _main(self) -> None:
        async with httpx.AsyncClient(timeout=10.0, headers=self.headers) as client:
            if not await self._hub_up(client):
                log.warning("demo_skipped", detail="the hub did not answer within 120 s")
                return
            try:
                await self._subscribe_receiver(client)
                await asyncio.gather(self._users(client), self._trickle(client))
            except httpx.HTTPError as exc:  # the hub is stopping
                log.info("demo_stopped", reason=str(exc)[:200])

    async def _hub_up(self, client: httpx.AsyncClient) -> bool:
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if (await client.get(f"{self.hub_url}/health")).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        return False

    async def _subscribe_receiver(self, client: httpx.AsyncClient) -> None:
        """Subscribe the sandbox's webhook receiver to every event, so deliveries show at once
        (``/sandbox/receiver/demo/deliveries``, the console's events page). A hub that kept its
        store from an earlier run already has the subscription: it is pointed at this run's
        receiver and given a new secret (the receiver of this run never saw the old one)."""
        receiver = self.sandbox.receiver
        if receiver is None:
            return
        url = f"{self.sandbox.urls['receiver']}{RECEIVER_PATH}/demo"
        found = await client.get(f"{self.hub_url}/event-subscriptions")
        existing = [
            s for s in found.json().get("items", []) if s["url"].endswith(f"{RECEIVER_PATH}/demo")
        ]
        if existing:
            sub_id = existing[0]["id"]
            await client.patch(
                f"{self.hub_url}/event-subscriptions/{sub_id}", json={"url": url, "enabled": True}
            )
            answer = await client.post(f"{self.hub_url}/event-subscriptions/{sub_id}/rotate-secret")
        else:
            answer = await client.post(
                f"{self.hub_url}/event-subscriptions",
                json={"url": url, "event_types": ["*"], "description": "sandbox receiver (demo)"},
            )
        if answer.status_code in (200, 201):
            receiver.endpoint("demo").secret = answer.json()["secret"]
        else:
            log.warning("demo_subscription_refused", status=answer.status_code, body=answer.text)

    async def _users(self, client: httpx.AsyncClient) -> None:
        """Sent together: the hub commits concurrent PATCHes as one group."""
        rng = random.Random(SEED)
        bodies: dict[str, dict[str, str]] = {}
        for n in range(1, USERS + 1):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            domain = REFUSED_DOMAIN if n == 4 else "users.example.com"
            body = {"email": f"{first}.{last}.{n}@{domain}".lower(), "firstName": first}
            if n % 3:
                body["lastName"] = last
            bodies[user_id(n)] = body
        responses = await asyncio.gather(
            *(client.patch(f"{self.hub_url}/users/{uid}", json=b) for uid, b in bodies.items())
        )
        for response in responses:
            if response.status_code != 200:
                log.warning("demo_user_refused", status=response.status_code, body=response.text)

    async def _trickle(self, client: httpx.AsyncClient) -> None:
        todo = f"{self.hub_url}/webhooks/todo"
        sender = (
            TodoSender(todo, secret=self.todo_secret, client=client)
            if self.sandbox.todo is not None
            else None
        )
        tasks = TaskStream(self.rng, self.run_tag)
        sent: list[tuple[bytes, dict[str, str]]] = []
        n = 0
        while not self._stop.is_set():
            if sender is not None and n % 2 == 0:
                body = json.dumps(tasks.next_event(), separators=(",", ":"))
                headers = sender.headers(body)
                await client.post(todo, content=body.encode(), headers=headers)
                sent.append((body.encode(), headers))
                if len(sent) == 1:  # once per run: a delivery whose signature does not match
                    forged = {
                        **sender.headers(body),
                        "webhook-signature": "v1,bm90IHRoZSByaWdodCBzaWduYXR1cmU=",
                    }
                    await client.post(todo, content=body.encode(), headers=forged)
                elif len(sent) % 15 == 0:  # a sender that did not see our 202: same id, same body
                    await client.post(todo, content=sent[-2][0], headers=sent[-2][1])
            if n % 4 == 1:
                self._hubspot_edit()
            if n % 12 == 5:
                self._acme_edit()
            if n % 12 == 9:
                self._pipedrive_edit()
            n += 1
            await asyncio.sleep(self.tick)

    def _hubspot_edit(self) -> None:
        hubspot = self.sandbox.hubspot
        if hubspot is None:
            return
        active = [c.id for c in hubspot.store.active() if c.id <= HUBSPOT_CONTACTS]
        if not active:
            return
        contact_id = self.rng.choice(active)
        change: dict[str, Any] = (
            {"company": self.rng.choice(COMPANIES)}
            if self.rng.random() < 0.5
            else {"phone": f"+1555{self.rng.randrange(10**7):07d}"}
        )
        hubspot.ui_update(contact_id, change)

    def _acme_edit(self) -> None:
        acme = self.sandbox.acme
        if acme is None:
            return
        ids = sorted(acme.contacts)
        if ids:
            acme.update(self.rng.choice(ids), {"acme_last_name": self.rng.choice(LAST_NAMES)})

    def _pipedrive_edit(self) -> None:
        pipedrive = self.sandbox.pipedrive
        if pipedrive is None:
            return
        persons = pipedrive.store.active()
        if persons:
            person = self.rng.choice(persons)
            phone = f"+1555{self.rng.randrange(10**7):07d}"
            pipedrive.store.update(person["id"], {"phone": phone})


class TaskStream:
    """Task events for :data:`TODO_USERS` users, stamped now: tasks are created, edited,
    completed and deleted."""

    _OFFSETS = tuple(timezone(timedelta(hours=h)) for h in (0, 1, 2, -4, 5))

    def __init__(self, rng: random.Random, run_tag: str) -> None:
        self.rng = rng
        self.run_tag = run_tag
        self.count = 0
        self.open: dict[str, tuple[str, str]] = {}  # task id -> (user id, content)

    def next_event(self) -> dict[str, Any]:
        rng = self.rng
        stamp = datetime.now(UTC).astimezone(rng.choice(self._OFFSETS))
        roll = rng.random()
        if len(self.open) < 3 or roll < 0.45:
            self.count += 1
            task_id = f"{self.run_tag}-{self.count}"
            owner, content = user_id(rng.randint(1, TODO_USERS)), rng.choice(CHORES)
            self.open[task_id] = (owner, content)
            return task_event(
                "created", user_id=owner, task_id=task_id, content=content, timestamp=stamp
            )
        task_id = rng.choice(sorted(self.open))
        owner, content = self.open[task_id]
        if roll < 0.65:
            content = rng.choice(CHORES)
            self.open[task_id] = (owner, content)
            return task_event(
                "updated", user_id=owner, task_id=task_id, content=content, timestamp=stamp
            )
        del self.open[task_id]
        if roll < 0.9:
            return task_event(
                "updated",
                user_id=owner,
                task_id=task_id,
                content=content,
                is_completed=True,
                timestamp=stamp,
            )
        return task_event(
            "deleted", user_id=owner, task_id=task_id, content=content, timestamp=stamp
        )
