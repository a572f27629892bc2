"""TODO-app simulator: sends task webhooks (``shared/providers/TODO_WEBHOOKS.md``) to a target.

One event per request, ``{"event": "created|updated|deleted", "timestamp", "metadata": {"userId",
"id", "content", "isCompleted"}}``. With a secret (``whsec_<base64>``) each request is signed with
Standard Webhooks (headers ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).

Python API: :class:`TodoSender` (``send``, ``run_scenario``, ``run_load``) and
:func:`random_events`. Control endpoints of :class:`TodoSimulator` (defaults for ``target`` and
``secret`` come from its constructor):

* ``POST /_sandbox/todo/send`` ``{"events": [...], "target"?, "secret"?}`` → ``{"results":
  [{"status", "error", "body", "event"}]}`` (sent in order, one at a time);
* ``POST /_sandbox/todo/load`` ``{"rate", "count"?, "duration"?, "seed"?, "users"?, "target"?,
  "secret"?}`` → 202 ``{"run": id}``; ``GET /_sandbox/todo/runs/{id}`` → ``{"id", "state",
  "sent", "statuses": {"202": n}, "errors"}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from switchboard.sandbox.faults import Faults, FaultState, RequestLog, SandboxMiddleware

EventName = Literal["created", "updated", "deleted"]
# The sandbox's well-known signing secret (Standard Webhooks format: whsec_ + base64).
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"switchboard-sandbox-todo-secret").decode()


def generate_secret() -> str:
    """A fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def task_event(
    event: EventName,
    *,
    user_id: str,
    task_id: str,
    content: str,
    is_completed: bool = False,
    timestamp: datetime | str | None = None,
) -> dict[str, Any]:
    """One TODO webhook payload (every metadata value a string but ``isCompleted``)."""
    if timestamp is None:
        timestamp = datetime.now(UTC)
    stamp = (
        timestamp.isoformat(timespec="seconds") if isinstance(timestamp, datetime) else timestamp
    )
    return {
        "event": event,
        "timestamp": stamp,
        "metadata": {
            "userId": str(user_id),
            "id": str(task_id),
            "content": content,
            "isCompleted": is_completed,
        },
    }


CHORES = (
    "Play games all day",
    "Buy milk",
    "Call mum",
    "Write the quarterly report",
    "Fix the leaking tap",
    "Review pull request",
    "Book dentist",
    "Water the plants",
)


def random_events(
    *, seed: int = 0, users: int = 5, start: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """An endless, plausible stream: tasks are created, edited, completed and deleted.

    Deterministic for a seed. Timestamps advance a few minutes per event and carry varying UTC
    offsets (the provider sends local times with offsets).
    """
    rng = random.Random(seed)
    clock = start or datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
    open_tasks: dict[str, _Task] = {}
    ids = itertools.count(1)
    offsets = [timezone(timedelta(hours=h)) for h in (-4, 0, 1, 2, 5)]
    while True:
        clock += timedelta(minutes=rng.randint(1, 30), seconds=rng.randint(0, 59))
        stamp = clock.astimezone(rng.choice(offsets))
        roll = rng.random()
        if not open_tasks or roll < 0.45:
            task = _Task(str(rng.randint(1, users)), str(next(ids)), rng.choice(CHORES))
            open_tasks[task.task_id] = task
            yield task.event("created", stamp)
            continue
        task = open_tasks[rng.choice(sorted(open_tasks))]
        if roll < 0.65:
            task.content = rng.choice(CHORES)
            yield task.event("updated", stamp)
        elif roll < 0.9:
            del open_tasks[task.task_id]
            yield task.event("updated", stamp, completed=True)
        else:
            del open_tasks[task.task_id]
            yield task.event("deleted", stamp)


@dataclass
class _Task:
    user_id: str
    task_id: str
    content: str

    def event(self, name: EventName, stamp: datetime, *, completed: bool = False) -> dict[str, Any]:
        return task_event(
            name,
            user_id=self.user_id,
            task_id=self.task_id,
            content=self.content,
            is_completed=completed,
            timestamp=stamp,
        )


@dataclass
class SendResult:
    event: dict[str, Any]
    status: int | None
    error: str | None = None
    body: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "body": self.body, "event": self.event}


class TodoSender:
    """Posts TODO webhooks to ``target``, signed when ``secret`` is set."""

    def __init__(
        self,
        target: str,
        *,
        secret: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.target = target
        self.webhook = Webhook(secret) if secret else None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> TodoSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def headers(self, body: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.webhook is not None:
            msg_id = f"msg_{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            headers |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self.webhook.sign(msg_id, now, body),
            }
        return headers

    async def send(self, event: dict[str, Any]) -> SendResult:
        body = json.dumps(event, separators=(",", ":"))
        try:
            response = await self._client.post(
                self.target, content=body.encode(), headers=self.headers(body)
            )
        except httpx.HTTPError as exc:
            return SendResult(event, None, f"{type(exc).__name__}: {exc}")
        return SendResult(event, response.status_code, None, response.text[:1000])

    async def run_scenario(self, events: Sequence[dict[str, Any]]) -> list[SendResult]:
        """Send ``events`` in order, each after the previous answer."""
        return [await self.send(event) for event in events]

    async def run_load(
        self,
        *,
        rate: float,
        count: int | None = None,
        duration: float | None = None,
        seed: int = 0,
        users: int = 5,
        on_result: Callable[[SendResult], None] | None = None,
    ) -> list[SendResult]:
        """Send :func:`random_events` at ``rate`` per second until ``count`` or ``duration``."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        if count is None and duration is None:
            raise ValueError("bound the load with count or duration")
        started = time.monotonic()
        results: list[SendResult] = []
        for n, event in enumerate(random_events(seed=seed, users=users)):
            if count is not None and n >= count:
                break
            offset = n / rate
            # Compare offsets, not clock readings: started + 0.2 - started can be 0.19999….
            if duration is not None and offset >= duration:
                break
            due = started + offset
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            result = await self.send(event)
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results


# --- control endpoints -----------------------------------------------------------------------


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, le=10_000)
    count: int | None = Field(None, ge=0, le=1_000_000)
    duration: float | None = Field(None, gt=0, le=3600)
    seed: int = 0
    users: int = Field(5, ge=1)
    target: str | None = None
    secret: str | None = None

    @model_validator(mode="after")
    def _bounded(self) -> LoadRequest:
        if self.count is None and self.duration is None:
            raise ValueError("bound the load with count or duration")
        return self


@dataclass
class Run:
    id: int
    state: str = "running"
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    detail: str | None = None

    def record(self, result: SendResult) -> None:
        if result.status is None:
            self.errors += 1
        else:
            self.statuses[str(result.status)] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "sent": sum(self.statuses.values()) + self.errors,
            "statuses": dict(self.statuses),
            "errors": self.errors,
            "detail": self.detail,
        }


class TodoSimulator:
    """The TODO app as a sandbox service: its base URL is the control API that drives sends."""

    def __init__(
        self,
        *,
        target: str | None = None,
        secret: str | None = WEBHOOK_SECRET,
        faults: Faults | None = None,
    ) -> None:
        self.target = target
        self.secret = secret
        self.runs: dict[int, Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.faults = FaultState(faults)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(self._build(), faults=self.faults, log=self.log)

    def sender(self, target: str | None = None, secret: str | None = None) -> TodoSender:
        url = target or self.target
        if not url:
            raise ValueError("no target: pass one or start the TODO simulator with a target")
        return TodoSender(url, secret=secret if secret is not None else self.secret)

    async def info(self, request: Request) -> Response:
        return JSONResponse({"target": self.target, "signed": bool(self.secret)})

    async def send(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"{}")
            events = data["events"]
            if not isinstance(events, list):
                raise TypeError("events must be a list")
            sender = self.sender(data.get("target"), data.get("secret"))
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"detail": f"bad request: {exc}"}, status_code=400)
        async with sender:
            results = await sender.run_scenario(events)
        return JSONResponse({"results": [r.as_json() for r in results]})

    async def load(self, request: Request) -> Response:
        try:
            spec = LoadRequest.model_validate_json(await request.body() or b"{}")
            sender = self.sender(spec.target, spec.secret)
        except ValidationError as exc:
            return JSONResponse({"detail": json.loads(exc.json(include_url=False))}, 422)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        run = Run(len(self.runs) + 1)
        self.runs[run.id] = run

        async def go() -> None:
            try:
                async with sender:
                    await sender.run_load(
                        rate=spec.rate,
                        count=spec.count,
                        duration=spec.duration,
                        seed=spec.seed,
                        users=spec.users,
                        on_result=run.record,
                    )
                run.state = "done"
            except Exception as exc:  # the run's state is the report; nothing else awaits it
                run.state, run.detail = "failed", f"{type(exc).__name__}: {exc}"

        task = asyncio.create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return JSONResponse({"run": run.id}, status_code=202)

    async def run_status(self, request: Request) -> Response:
        run = self.runs.get(int(request.path_params["run_id"]))
        if run is None:
            return JSONResponse({"detail": "no such run"}, status_code=404)
        return JSONResponse(run.as_json())

    def _build(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        return Starlette(
            routes=[
                Route("/_sandbox/todo", self.info, methods=["GET"]),
                Route("/_sandbox/todo/send", self.send, methods=["POST"]),
                Route("/_sandbox/todo/load", self.load, methods=["POST"]),
                Route("/_sandbox/todo/runs/{run_id:int}", self.run_status, methods=["GET"]),
            ],
            lifespan=lifespan,
        )
