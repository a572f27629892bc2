"""HubSpot's error answers: its error body, its 429 body, and the answers of injected faults."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

AUTH_HELP = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
NOT_FOUND = "Object not found.  objectId are usually numeric."


class HubSpotError(Exception):
    """An error answer, rendered as HubSpot's error body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        errors: list[dict[str, Any]] | None = None,
        sub_category: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context
        self.errors = errors
        self.sub_category = sub_category
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = self.context
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def validation_error(message: str, **kw: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **kw)


def conflict(existing: int) -> HubSpotError:
    return HubSpotError(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")


def rate_limited(policy: Literal["TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY"]) -> JSONResponse:
    """HubSpot's 429 body (it carries ``errorType`` and ``policyName``, not ``category``)."""
    name = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "SECONDLY": "secondly"}.get(
        policy, "daily"
    )
    return JSONResponse(
        {
            "status": "error",
            "message": f"You have reached your {name} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
        },
        status_code=429,
    )


def server_error(status: int) -> Response:
    return HubSpotError(
        status, "INTERNAL_ERROR", "internal error", sub_category="SANDBOX_FAULT"
    ).response()


def unavailable() -> Response:
    return HubSpotError(503, "SERVICE_UNAVAILABLE", "Service Unavailable").response()
