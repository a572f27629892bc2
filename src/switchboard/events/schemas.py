"""The search contract's shapes (``shared/providers/fever/openapi.yaml``), for the docs.

The endpoint itself writes pre-serialised bytes (see ``index``); these models only describe
them in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class EventSummary(BaseModel):
    id: str = Field(
        description="Identifier for the plan (UUID)", json_schema_extra={"format": "uuid"}
    )
    title: str
    start_date: str = Field(json_schema_extra={"format": "date"})
    start_time: str | None = Field(json_schema_extra={"format": "time"}, examples=["22:38:19"])
    end_date: str | None = Field(json_schema_extra={"format": "date"})
    end_time: str | None = Field(json_schema_extra={"format": "time"}, examples=["14:45:15"])
    min_price: float | None
    max_price: float | None


class EventList(BaseModel):
    events: list[EventSummary]


class SearchResponse(BaseModel):
    data: EventList
    error: dict[str, Any] | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorDetail
    data: dict[str, Any] | None = None


QUERY_PARAMETERS: list[dict[str, Any]] = [
    {
        "in": "query",
        "name": "starts_at",
        "required": False,
        "schema": {"type": "string", "format": "date-time", "example": "2017-07-21T17:32:28Z"},
        "description": "Return only events that starts after this date",
    },
    {
        "in": "query",
        "name": "ends_at",
        "required": False,
        "schema": {"type": "string", "format": "date-time", "example": "2021-07-21T17:32:28Z"},
        "description": "Return only events that finishes before this date",
    },
]
