"""A declarative REST CRM: everything provider-specific is configuration (:mod:`.spec`).

The REST shape it speaks:

* ``GET {paths.list}`` paged as ``pagination`` says (page numbers, offsets, or a cursor from the
  body or the ``Link`` header; default ACME's ``?page=&per_page=`` → ``{"data": [records],
  "next_page": n | null}``), the records at ``records_path`` (a bare list is one last page);
* ``GET {paths.item}`` → the record | 404; ``POST {paths.create}`` → the record;
  ``PUT`` (or ``PATCH``) ``{paths.item}`` merges the given fields → the record | 404; ``DELETE
  {paths.item}`` → 2xx | 404. ``{id}`` in ``paths.item`` is replaced by the record's id.
* ``fields`` maps ours to field paths into their records (nested objects, the primary item of a
  list: :mod:`.paths`).

Each endpoint class has its own rate budget (``Bucket``) sized by the connection's
``rate_limit``, because CRMs of this kind (ACME) count requests per client *and endpoint*.
There is no lookup by email in this shape: :meth:`MappedCrmContacts.find_by_email` scans the
list (one request per page) — fine for the small CRMs this kind is for; the hub's
own store is the fast path. Nor does this shape refuse a second record with the same email, so
:meth:`MappedCrmContacts.create` looks first and raises ``DuplicateContact`` (409), as HubSpot
does on its own. The look and the create are two calls: two creates of one email racing each
other can still both succeed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

import httpx

from switchboard.connectors.crm import (
    ContactWrite,
    CrmContact,
    Fields,
    WriteResult,
    crm_errors,
    json_body,
    malformed,
    read_each,
    refuse_duplicate,
    write_each,
)
from switchboard.connectors.mapped_crm import paginators
from switchboard.connectors.mapped_crm.mapping import FieldMap
from switchboard.connectors.mapped_crm.paginators import PageToken
from switchboard.connectors.mapped_crm.settings import MappedCrmConnection
from switchboard.http import Bucket, ConnectionClient, Mode

CONCURRENCY = 4
"""Calls at once of one batch (this REST shape has no batch endpoint: one call per contact)."""

_LIST, _GET, _CREATE, _UPDATE, _DELETE = (
    Bucket("list"),
    Bucket("get"),
    Bucket("create"),
    Bucket("update"),
    Bucket("delete"),
)


class MappedCrmClient:
    """The raw endpoints, records in the CRM's own field names."""

    def __init__(self, http: ConnectionClient, conn: MappedCrmConnection, *, mode: Mode) -> None:
        self.http = http
        self.paths = conn.paths
        self.pagination = conn.pagination
        self.records_path = conn.records_path
        self.update_method = conn.update_method
        self.mode = mode
        self.connection = http.name
        self.calls = 0

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self.calls += 1
        return await self.http.request(method, url, **kw)

    @property
    def first_page(self) -> PageToken:
        """The token of the first page (``list_page(page=client.first_page)``)."""
        return paginators.first_page(self.pagination)

    async def list_page(self, *, page: PageToken) -> tuple[list[dict[str, Any]], PageToken]:
        """One page of records and the next page's token (``None`` after the last)."""
        url, params = paginators.page_request(self.pagination, page)
        with self._errors():
            response = await self._request(
                "GET",
                url or self.paths.list,
                # None, not {}: httpx replaces a URL's own query with an empty params dict.
                params=params or None,
                bucket=_LIST,
                mode=self.mode,
            )
        body = json_body(response, self.connection)
        items, bare = paginators.select_records(self.records_path, body, self.connection)
        records = self._records(items)
        if bare:
            return records, None
        following = paginators.next_page(
            self.pagination,
            page,
            body=body,
            records=records,
            response=response,
            connection=self.connection,
        )
        return records, following

    async def pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page's records, from the first."""
        page = self.first_page
        while True:
            records, following = await self.list_page(page=page)
            yield records
            if following is None:
                return
            page = following

    async def get(self, *, record_id: str) -> dict[str, Any] | None:
        with self._errors():
            response = await self._request(
                "GET", self._item(record_id), accept={404}, bucket=_GET, mode=self.mode
            )
        if response.status_code == 404:
            return None
        return self._record(json_body(response, self.connection))

    async def create(self, *, record: dict[str, Any]) -> dict[str, Any]:
        with self._errors():
            response = await self._request(
                "POST", self.paths.create, json=record, bucket=_CREATE, mode=self.mode
            )
        return self._record(json_body(response, self.connection))

    async def update(self, *, record_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """``PUT`` (or ``PATCH``: ``update_method``) the given fields, which the CRM merges; 404
        → ``ContactNotFound``."""
        with self._errors():
            response = await self._request(
                self.update_method,
                self._item(record_id),
                json=record,
                bucket=_UPDATE,
                mode=self.mode,
                idempotent=True,
            )
        return self._record(json_body(response, self.connection))

    async def delete(self, *, record_id: str) -> bool:
        """``DELETE``; ``False`` when the CRM did not know the record."""
        with self._errors():
            response = await self._request(
                "DELETE", self._item(record_id), accept={404}, bucket=_DELETE, mode=self.mode
            )
        return response.status_code != 404

    def _item(self, record_id: str) -> str:
        return self.paths.item.replace("{id}", quote(record_id, safe=""))

    def _record(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise malformed(self.connection, "expected a record object", body)
        return body

    def _records(self, items: list[Any]) -> list[dict[str, Any]]:
        return [self._record(item) for item in items]

    def _errors(self) -> AbstractContextManager[None]:
        return crm_errors(self.connection)


class MappedCrmContacts:
    """:class:`~switchboard.connectors.crm.CrmContacts` over :class:`MappedCrmClient`."""

    def __init__(self, http: ConnectionClient, conn: MappedCrmConnection, *, mode: Mode) -> None:
        self.client = MappedCrmClient(http, conn, mode=mode)
        self.connection = http.name
        self.map = FieldMap(
            http.name,
            dict(conn.fields),
            conn.id_field,
            updated_at_field=conn.updated_at_field,
            custom=dict(conn.custom_fields),
        )

    async def get(self, external_id: str) -> CrmContact | None:
        record = await self.client.get(record_id=external_id)
        return None if record is None else self.map.from_vendor(record)

    async def find_by_email(self, email: str) -> CrmContact | None:
        """Scans the list (this REST shape has no lookup by email)."""
        if "email" not in self.map.ours_to_theirs:
            return None
        wanted = email.strip().lower()
        async for records in self.client.pages():
            for record in records:
                value = self.map.read("email", record)
                if isinstance(value, str) and value.strip().lower() == wanted:
                    return self.map.from_vendor(record)
        return None

    async def create(self, fields: Fields) -> CrmContact:
        record = self.map.to_vendor(fields)  # an unmapped field fails before any request
        await refuse_duplicate(self, fields)
        return self.map.from_vendor(await self.client.create(record=record))

    async def update(self, external_id: str, fields: Fields) -> CrmContact:
        record = await self.client.update(record_id=external_id, record=self.map.to_vendor(fields))
        return self.map.from_vendor(record)

    async def archive(self, external_id: str) -> None:
        await self.client.delete(record_id=external_id)

    async def read_many(self, external_ids: Sequence[str]) -> dict[str, CrmContact]:
        return await read_each(self, external_ids, concurrency=CONCURRENCY)

    async def write_many(
        self, writes: Sequence[ContactWrite], *, create_missing: bool
    ) -> list[WriteResult]:
        return await write_each(
            self, writes, create_missing=create_missing, concurrency=CONCURRENCY
        )

    @property
    def calls(self) -> int:
        return self.client.calls
