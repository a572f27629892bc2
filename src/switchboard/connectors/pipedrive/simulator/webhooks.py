"""The simulator's webhooks v1 sender: one delivery per person change, HTTP Basic auth.

A delivery is ``{"v": 1, "matches_filters": {"current": [], "previous": []}, "meta": {...},
"current", "previous", "event": "<action>.person", "retry": n}``; ``current`` is null for a
deletion. Failed deliveries are retried (``retry`` counts them; the rest of the body is the same).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchboard.sandbox.webhooks import Outbox

COMPANY_ID = 7_000_001
USER_ID = 9_000_001
HOST = "sandbox.pipedrive.com"


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    http_auth_user: str | None = None
    http_auth_password: str | None = None
    max_attempts: int = Field(3, ge=1)
    retry_base_seconds: float = Field(1.0, ge=0)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def payload(
    action: str,
    current: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    *,
    micros: int,
    webhook_id: int,
) -> dict[str, Any]:
    person = current or previous or {}
    return {
        "v": 1,
        "matches_filters": {"current": [], "previous": []},
        "meta": {
            "v": 1,
            "action": action,
            "object": "person",
            "id": person.get("id"),
            "company_id": COMPANY_ID,
            "user_id": USER_ID,
            "host": HOST,
            "timestamp": micros // 1_000_000,
            "timestamp_micro": micros,
            "permitted_user_ids": [USER_ID],
            "trans_pending": False,
            "is_bulk_update": False,
            "pipedrive_service_name": False,
            "matches_filters": {"current": [], "previous": []},
            "webhook_id": webhook_id,
            "request_id": str(uuid.uuid4()),
        },
        "current": current,
        "previous": previous,
        "event": f"{action}.person",
        "retry": 0,
    }


class Sender:
    """Queues a delivery per change on the simulator's :class:`Outbox`."""

    def __init__(self, settings: WebhookSettings, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self.settings = settings
        self.clock = clock
        self.outbox = Outbox(
            max_attempts=settings.max_attempts, backoff_base=settings.retry_base_seconds
        )
        self._last_micros = 0

    def configure(self, **changes: Any) -> WebhookSettings:
        with self._lock:
            self.settings = WebhookSettings.model_validate(
                {**self.settings.model_dump(), **changes}
            )
            self.outbox.max_attempts = self.settings.max_attempts
            self.outbox.backoff_base = self.settings.retry_base_seconds
            return self.settings

    def _micros(self) -> int:
        with self._lock:  # strictly increasing: two changes never share a timestamp
            self._last_micros = max(int(self.clock() * 1_000_000), self._last_micros + 1)
            return self._last_micros

    def send(
        self, action: str, current: dict[str, Any] | None, previous: dict[str, Any] | None
    ) -> None:
        s = self.settings
        if s.url is None:
            return
        body = payload(action, current, previous, micros=self._micros(), webhook_id=1)
        headers = {"Content-Type": "application/json"}
        if s.http_auth_user is not None:
            headers["Authorization"] = basic_auth(s.http_auth_user, s.http_auth_password or "")
        url = s.url

        def build(attempt: int) -> tuple[str, bytes, dict[str, str]]:
            data = json.dumps({**body, "retry": attempt}, separators=(",", ":")).encode()
            return url, data, headers

        self.outbox.submit(build)
