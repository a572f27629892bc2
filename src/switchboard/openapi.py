"""Documented error responses, so /docs shows every status an endpoint can answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationErrorItem]


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid API key",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid input; `detail` names each field",
    502: "The provider failed",
    503: "Unavailable; retry later",
}


def ERRORS(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": ValidationErrorBody if code == 422 else ErrorBody,
            "description": _DESCRIPTIONS.get(code, "Error"),
        }
        for code in codes
    }
