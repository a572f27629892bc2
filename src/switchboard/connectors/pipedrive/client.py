"""A thin typed client for Pipedrive's API v1 persons: one keyword-only method per endpoint,
answers as Pipedrive's JSON (map them with :mod:`switchboard.connectors.pipedrive.mapping`).

Every answer is the envelope ``{"success", "data", "additional_data"}``; a refusal is
``{"success": false, "error", "error_info"}`` with a 4xx status, which arrives as the CRM errors
of :mod:`switchboard.connectors.crm` (404 → ``ContactNotFound``, 400/422 → ``InvalidContact``).
Calls go through the connection's outbound client (timeouts, retries honouring Retry-After on
429, the rate budget, the breaker); an API token rides in the ``x-api-token`` header (never the
``api_token`` query parameter: URLs end up in logs), an OAuth token as the outbound layer's
bearer.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

import httpx

from switchboard.connectors.crm import crm_errors, json_body, malformed
from switchboard.connectors.pipedrive.settings import API_TOKEN_HEADER, PipedriveConnection
from switchboard.http import ConnectionClient, Mode

PERSONS = "/v1/persons"
LIST_LIMIT = 500
"""The largest page Pipedrive serves."""
SEARCH_LIMIT = 100
GONE = {404, 410}


class PipedriveClient:
    def __init__(self, http: ConnectionClient, conn: PipedriveConnection, *, mode: Mode) -> None:
        self.http = http
        self.mode = mode
        self.connection = http.name
        self.calls = 0
        self._headers = (
            {API_TOKEN_HEADER: conn.api_token.get_secret_value()}
            if conn.api_token is not None
            else {}
        )

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self.calls += 1
        return await self.http.request(method, url, headers=self._headers, mode=self.mode, **kw)

    async def list_page(
        self, *, start: int = 0, limit: int = LIST_LIMIT
    ) -> tuple[list[dict[str, Any]], int | None]:
        """``GET /v1/persons?start=&limit=&sort=id ASC``: one page of active persons and the
        next page's ``start`` (``None`` after the last: ``more_items_in_collection`` false).
        Sorted by id, so persons added during a pass land after the pages already read."""
        params = {"start": start, "limit": limit, "sort": "id ASC"}
        with self._errors():
            response = await self._request("GET", PERSONS, params=params)
        body = self._envelope(response)
        data = body.get("data")
        if data is None:  # Pipedrive's "no persons": data null rather than []
            data = []
        if not isinstance(data, list):
            raise malformed(self.connection, "expected a list of persons in data", body)
        pagination = (body.get("additional_data") or {}).get("pagination") or {}
        if not isinstance(pagination, dict):
            raise malformed(self.connection, "additional_data.pagination is not an object", body)
        next_start = pagination.get("next_start")
        if pagination.get("more_items_in_collection") is not True:
            return [self._person(p) for p in data], None
        if isinstance(next_start, bool) or not isinstance(next_start, int) or next_start <= start:
            raise malformed(self.connection, f"next_start {next_start!r} after start {start}", body)
        return [self._person(p) for p in data], next_start

    async def get(self, *, person_id: str) -> dict[str, Any] | None:
        """``GET /v1/persons/{id}``: the person (a deleted one too, with ``active_flag``
        false, while Pipedrive keeps it); ``None`` on 404/410."""
        with self._errors():
            response = await self._request("GET", self._item(person_id), accept=GONE)
        if response.status_code in GONE:
            return None
        return self._person(self._envelope(response).get("data"))

    async def search(
        self,
        *,
        term: str,
        fields: str = "email",
        exact_match: bool = True,
        start: int = 0,
        limit: int = SEARCH_LIMIT,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """``GET /v1/persons/search``: the matching items (``{"result_score", "item": {"id",
        "name", "emails": [str], "phones": [str], "organization"}}``) and the next ``start``.
        The search index trails writes by a moment in Pipedrive."""
        params = {
            "term": term,
            "fields": fields,
            "exact_match": "true" if exact_match else "false",
            "start": start,
            "limit": limit,
        }
        with self._errors():
            response = await self._request("GET", f"{PERSONS}/search", params=params)
        body = self._envelope(response)
        data = body.get("data")
        if data is None:  # no match, in the list endpoint's way
            return [], None
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise malformed(self.connection, "expected data.items in a search answer", body)
        found = [
            i["item"] for i in items if isinstance(i, dict) and isinstance(i.get("item"), dict)
        ]
        pagination = (body.get("additional_data") or {}).get("pagination") or {}
        more = isinstance(pagination, dict) and pagination.get("more_items_in_collection") is True
        next_start = pagination.get("next_start") if more else None
        return found, next_start if isinstance(next_start, int) and next_start > start else None

    async def create(self, *, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/persons`` → 201 the person. Pipedrive does not refuse a second person
        with the same email."""
        with self._errors():
            response = await self._request("POST", PERSONS, json=body)
        return self._person(self._envelope(response).get("data"))

    async def update(self, *, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/persons/{id}`` (the given fields only) → the whole person; 404 →
        ``ContactNotFound``."""
        with self._errors():
            response = await self._request(
                "PUT",
                self._item(person_id),
                json=body,
                # Setting the same values again has no further effect: safe to repeat.
                idempotent=True,
            )
        return self._person(self._envelope(response).get("data"))

    async def delete(self, *, person_id: str) -> bool:
        """``DELETE /v1/persons/{id}`` → ``{"data": {"id"}}``; ``False`` when Pipedrive did not
        know the person (or it was already deleted)."""
        with self._errors():
            response = await self._request(
                "DELETE", self._item(person_id), accept=GONE, idempotent=True
            )
        return response.status_code not in GONE

    # helpers

    def _item(self, person_id: str) -> str:
        return f"{PERSONS}/{quote(person_id, safe='')}"

    def _envelope(self, response: httpx.Response) -> dict[str, Any]:
        body = json_body(response, self.connection)
        if not isinstance(body, dict) or body.get("success") is not True:
            raise malformed(self.connection, "expected {success: true, data}", body)
        return body

    def _person(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or "id" not in data:
            raise malformed(self.connection, "expected a person object", data)
        return data

    def _errors(self) -> AbstractContextManager[None]:
        return crm_errors(self.connection)
