"""A thin typed client for HubSpot's CRM v3 contacts API: one keyword-only method per endpoint,
answers as HubSpot's JSON (map them with :mod:`switchboard.connectors.hubspot.mapping`).

Every call goes through the connection's outbound client (timeouts, retries honouring
Retry-After, the rate budget learnt from ``X-HubSpot-RateLimit-*``, the breaker). Search has its
own 5 requests/s budget (:data:`SEARCH_BUCKET`), as HubSpot limits it separately and sends no
rate-limit headers on it. HubSpot's refusals arrive as the CRM errors of
:mod:`switchboard.connectors.crm` (409 → ``DuplicateContact``, 404 → ``ContactNotFound``,
400 → ``InvalidContact``); everything else as the outbound layer's errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

import httpx

from switchboard.connectors.crm import (
    crm_errors,
    json_body,
    malformed,
)
from switchboard.connectors.hubspot.mapping import existing_id
from switchboard.http import Bucket, ConnectionClient, Mode

CONTACTS = "/crm/v3/objects/contacts"
SEARCH_BUCKET = Bucket("search", "5/1s")
LIST_LIMIT = 100
SEARCH_LIMIT = 200
BATCH_LIMIT = 100
"""Inputs per batch request (more → 400 ``VALIDATION_ERROR``)."""
SEARCH_MAX_RESULTS = 10_000
"""HubSpot answers 400 to a search whose ``after + limit`` passes this."""


class HubSpotClient:
    def __init__(self, http: ConnectionClient, *, mode: Mode) -> None:
        self.http = http
        self.mode = mode
        self.connection = http.name
        self.calls = 0

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self.calls += 1
        return await self.http.request(method, url, **kw)

    async def list_page(
        self,
        *,
        properties: Sequence[str],
        after: str | None = None,
        limit: int = LIST_LIMIT,
        archived: bool = False,
    ) -> dict[str, Any]:
        """``GET /crm/v3/objects/contacts``: ``{"results": [...], "paging"?: {"next": {"after"}}}``
        (``paging`` absent on the last page; with ``archived`` only archived contacts)."""
        params: dict[str, Any] = {
            "limit": limit,
            "properties": ",".join(properties),
            "archived": "true" if archived else "false",
        }
        if after:
            params["after"] = after
        with self._errors():
            response = await self._request("GET", CONTACTS, params=params, mode=self.mode)
        return self._page(json_body(response, self.connection))

    async def get(
        self, *, contact_id: str, properties: Sequence[str], archived: bool = False
    ) -> dict[str, Any] | None:
        """``GET /crm/v3/objects/contacts/{id}``; ``None`` on 404."""
        params = {"properties": ",".join(properties), "archived": "true" if archived else "false"}
        return await self._get_one(f"{CONTACTS}/{quote(contact_id, safe='')}", params)

    async def get_by_email(self, *, email: str, properties: Sequence[str]) -> dict[str, Any] | None:
        """``GET /crm/v3/objects/contacts/{email}?idProperty=email`` (the email percent-encoded
        in the path); ``None`` on 404."""
        params = {"properties": ",".join(properties), "idProperty": "email"}
        path = f"{CONTACTS}/{quote(email.strip().lower(), safe='')}"
        return await self._get_one(path, params)

    async def create(self, *, properties: dict[str, str]) -> dict[str, Any]:
        """``POST /crm/v3/objects/contacts`` → 201 the contact (409 → ``DuplicateContact``)."""
        with self._errors():
            response = await self._request(
                "POST",
                CONTACTS,
                json={"properties": properties, "associations": []},
                mode=self.mode,
            )
        return self._object(json_body(response, self.connection))

    async def update(self, *, contact_id: str, properties: dict[str, str]) -> dict[str, Any]:
        """``PATCH /crm/v3/objects/contacts/{id}`` → the written properties (404 →
        ``ContactNotFound``)."""
        with self._errors():
            response = await self._request(
                "PATCH",
                f"{CONTACTS}/{quote(contact_id, safe='')}",
                json={"properties": properties},
                # Setting the same values twice has no further effect: safe to repeat.
                idempotent=True,
                mode=self.mode,
            )
        return self._object(json_body(response, self.connection))

    async def archive(self, *, contact_id: str) -> None:
        """``DELETE /crm/v3/objects/contacts/{id}`` → 204 (HubSpot answers 204 for unknown ids
        too)."""
        with self._errors():
            await self._request(
                "DELETE", f"{CONTACTS}/{quote(contact_id, safe='')}", accept={404}, mode=self.mode
            )

    async def batch_read(
        self,
        *,
        ids: Sequence[str],
        properties: Sequence[str],
        archived: bool = False,
        id_property: str | None = None,
    ) -> list[dict[str, Any]]:
        """``POST .../batch/read`` (≤100 ids, or emails with ``id_property="email"``): the
        contacts found (missing ones are skipped: HubSpot lists them in a 207's ``errors``)."""
        body: dict[str, Any] = {
            "inputs": [{"id": i} for i in _at_most_100(ids)],
            "properties": list(properties),
            "archived": archived,
        }
        if id_property is not None:
            body["idProperty"] = id_property
        with self._errors():
            response = await self._request(
                "POST",
                f"{CONTACTS}/batch/read",
                json=body,
                idempotent=True,  # a read
                mode=self.mode,
            )
        return self._page(json_body(response, self.connection))["results"]  # type: ignore[no-any-return]

    async def batch_update(self, *, inputs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``POST .../batch/update`` with ``[{"id", "properties"}]`` (≤100): ``{"results",
        "errors"?}``; a 207 lists each failed input in ``errors`` (``context.ids``)."""
        return await self._batch_write("update", inputs)

    async def batch_upsert(self, *, inputs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``POST .../batch/upsert`` with ``[{"id": email, "idProperty": "email",
        "properties"}]`` (≤100): creates the missing contacts, updates the others; results
        carry ``new``."""
        return await self._batch_write("upsert", inputs)

    async def _batch_write(self, verb: str, inputs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        with self._errors():
            response = await self._request(
                "POST",
                f"{CONTACTS}/batch/{verb}",
                json={"inputs": _at_most_100(inputs)},
                # Setting the same values again has no further effect: safe to repeat.
                idempotent=True,
                mode=self.mode,
            )
        return self._page(json_body(response, self.connection))

    async def search_page(
        self,
        *,
        filters: Sequence[dict[str, Any]],
        properties: Sequence[str],
        sorts: Sequence[dict[str, Any]] = (
            {"propertyName": "hs_object_id", "direction": "ASCENDING"},
        ),
        after: int = 0,
        limit: int = SEARCH_LIMIT,
    ) -> dict[str, Any]:
        """``POST .../search`` with one filter group (the filters ANDed): ``{"total", "results",
        "paging"?}``. ``after`` is an offset; ``after + limit`` may not pass 10,000."""
        body = {
            "filterGroups": [{"filters": list(filters)}],
            "sorts": list(sorts),
            "properties": list(properties),
            "limit": limit,
            "after": str(after),
        }
        with self._errors():
            response = await self._request(
                "POST",
                f"{CONTACTS}/search",
                json=body,
                bucket=SEARCH_BUCKET,
                idempotent=True,  # a read
                mode=self.mode,
            )
        return self._page(json_body(response, self.connection))

    # helpers

    async def _get_one(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        with self._errors():
            response = await self._request("GET", path, params=params, accept={404}, mode=self.mode)
        if response.status_code == 404:
            return None
        return self._object(json_body(response, self.connection))

    def _object(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "id" not in body:
            raise malformed(self.connection, "expected a contact object", body)
        return body

    def _page(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise malformed(self.connection, "expected an object with a results list", body)
        return body

    def _errors(self) -> AbstractContextManager[None]:
        """HubSpot's refusals as the CRM errors callers act on."""
        return crm_errors(self.connection, existing_id=existing_id)


def _at_most_100(items: Sequence[Any]) -> list[Any]:
    if len(items) > BATCH_LIMIT:
        raise ValueError(f"HubSpot takes at most {BATCH_LIMIT} inputs per batch request")
    return list(items)
