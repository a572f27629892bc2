"""Contact webhooks: subscription settings, HubSpot's v1 and v3 signatures, and the sender."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchboard.connectors.hubspot.simulator.store import WRITABLE, Change, ChangeKind, now_ms
from switchboard.connectors.hubspot.simulator.tokens import CLIENT_SECRET
from switchboard.sandbox.webhooks import Outbox

PORTAL_ID = 62515
APP_ID = 1160452


class HubSpotWebhookSettings(BaseModel):
    """Where and how the simulator posts contact webhooks (nothing is sent without ``url``)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    client_secret: str = CLIENT_SECRET
    app_id: int = APP_ID
    portal_id: int = PORTAL_ID
    batch_window_ms: int = Field(50, ge=0, description="Collect events this long per batch.")
    max_batch: int = Field(100, ge=1, le=100)
    max_attempts: int = Field(10, ge=1, description="HubSpot tries up to 10 times.")
    retry_base_seconds: float = Field(1.0, ge=0, description="First retry wait; doubles after.")
    retry_cap_seconds: float = Field(60.0, ge=0)
    timeout_seconds: float = Field(5.0, gt=0, description="HubSpot gives up on a call after 5 s.")
    duplicate_rate: float = Field(0.0, ge=0, le=1, description="Share of batches sent twice.")
    shuffle: bool = Field(False, description="Deliver events out of order.")
    properties: list[str] | None = Field(
        None, description="propertyChange subscriptions; null: every writable property."
    )
    seed: int = 0


SUBSCRIPTION_IDS: dict[ChangeKind, int] = {
    "creation": 1001,
    "propertyChange": 1002,
    "deletion": 1003,
    "merge": 1004,
}


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3``: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v1(secret: str, body: bytes) -> str:
    """``X-HubSpot-Signature`` (v1): hex SHA-256 of ``client_secret + body``."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


class HubSpotWebhooks:
    """Turns store changes into batched, signed, retried webhook deliveries."""

    def __init__(self, settings: HubSpotWebhookSettings | None = None) -> None:
        self._lock = threading.Lock()
        self.settings = settings or HubSpotWebhookSettings()
        self.outbox = self._new_outbox()
        self._pending: list[dict[str, Any]] = []
        self._next_event = 1
        self._rng = random.Random(self.settings.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _new_outbox(self) -> Outbox:
        s = self.settings
        return Outbox(
            max_attempts=s.max_attempts,
            backoff_base=s.retry_base_seconds,
            backoff_cap=s.retry_cap_seconds,
            timeout=s.timeout_seconds,
        )

    def configure(self, **changes: Any) -> HubSpotWebhookSettings:
        with self._lock:
            self.settings = HubSpotWebhookSettings.model_validate(
                {**self.settings.model_dump(), **changes}
            )
            s = self.settings
            self._rng = random.Random(s.seed)
            self.outbox.max_attempts = s.max_attempts
            self.outbox.backoff_base = s.retry_base_seconds
            self.outbox.backoff_cap = s.retry_cap_seconds
            self.outbox.timeout = s.timeout_seconds
            return self.settings

    def on_changes(self, changes: list[Change]) -> None:
        with self._lock:
            s = self.settings
            if s.url is None:
                return
            subscribed = set(s.properties) if s.properties is not None else set(WRITABLE)
            for change in changes:
                if change.kind == "propertyChange" and change.property_name not in subscribed:
                    continue
                self._pending.append(self._event(change, s))
            loop, wake = self._loop, self._wake
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _event(self, change: Change, s: HubSpotWebhookSettings) -> dict[str, Any]:
        event: dict[str, Any] = {
            "eventId": self._next_event,
            "subscriptionId": SUBSCRIPTION_IDS[change.kind],
            "portalId": s.portal_id,
            "appId": s.app_id,
            "occurredAt": change.occurred_ms,
            "subscriptionType": f"contact.{change.kind}",
            "attemptNumber": 0,
            "objectId": change.object_id,
            "changeFlag": {
                "creation": "CREATED",
                "deletion": "DELETED",
                "merge": "MERGED",
                "propertyChange": "UPDATED",
            }[change.kind],
            "changeSource": change.source,
            **change.extra,
        }
        self._next_event += 1
        if change.kind == "propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value or ""
        return event

    async def start(self) -> None:
        await self.outbox.start()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            if self._pending:
                self._wake.set()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        with self._lock:
            self._loop = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.outbox.stop()

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._pending and self.outbox.idle

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.settings.batch_window_ms / 1000)
            while True:
                with self._lock:
                    s = self.settings
                    batch, self._pending = (
                        self._pending[: s.max_batch],
                        self._pending[s.max_batch :],
                    )
                    if not batch:
                        break
                    if s.shuffle:
                        self._rng.shuffle(batch)
                    copies = 2 if self._rng.random() < s.duplicate_rate else 1
                for _ in range(copies):
                    self.outbox.submit(self._builder(batch, s))

    @staticmethod
    def _builder(
        batch: list[dict[str, Any]], s: HubSpotWebhookSettings
    ) -> Callable[[int], tuple[str, bytes, dict[str, str]]]:
        assert s.url is not None
        url, secret = s.url, s.client_secret

        def build(attempt: int) -> tuple[str, bytes, dict[str, str]]:
            events = [{**e, "attemptNumber": attempt} for e in batch]
            body = json.dumps(events, separators=(",", ":")).encode()
            timestamp = str(now_ms())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: sandbox)",
                "X-HubSpot-Request-Timestamp": timestamp,
                "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, timestamp),
                "X-HubSpot-Signature": sign_v1(secret, body),
                "X-HubSpot-Signature-Version": "v1",
            }
            return url, body, headers

        return build
