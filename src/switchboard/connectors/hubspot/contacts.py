"""HubSpot contacts behind the hub's :class:`~switchboard.connectors.crm.CrmContacts`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from switchboard.connectors.crm import (
    ContactNotFound,
    ContactWrite,
    CrmContact,
    DuplicateContact,
    Fields,
    InvalidContact,
    MalformedResponse,
    WriteResult,
)
from switchboard.connectors.hubspot.client import BATCH_LIMIT, HubSpotClient
from switchboard.connectors.hubspot.mapping import existing_id, from_record, to_properties
from switchboard.connectors.hubspot.settings import HubSpotConnection
from switchboard.http import ConnectionClient, Mode


class HubSpotContacts:
    """Reads ask for the connection's configured ``properties`` and its custom fields'."""

    def __init__(self, http: ConnectionClient, conn: HubSpotConnection, *, mode: Mode) -> None:
        self.client = HubSpotClient(http, mode=mode)
        self.connection = http.name
        self.custom = dict(conn.custom_fields)
        self.properties = list(dict.fromkeys([*conn.properties, *self.custom.values()]))

    @property
    def calls(self) -> int:
        return self.client.calls

    async def get(self, external_id: str) -> CrmContact | None:
        record = await self.client.get(contact_id=external_id, properties=self.properties)
        return None if record is None else from_record(record, self.connection, self.custom)

    async def get_archived(self, external_id: str) -> CrmContact | None:
        """The contact if HubSpot holds it archived (``archivedAt`` is its ``updated_at``)."""
        record = await self.client.get(
            contact_id=external_id, properties=self.properties, archived=True
        )
        return None if record is None else from_record(record, self.connection, self.custom)

    async def find_by_email(self, email: str) -> CrmContact | None:
        record = await self.client.get_by_email(email=email, properties=self.properties)
        return None if record is None else from_record(record, self.connection, self.custom)

    async def create(self, fields: Fields) -> CrmContact:
        properties = to_properties(fields, self.connection, self.custom)
        return from_record(
            await self.client.create(properties=properties), self.connection, self.custom
        )

    async def update(self, external_id: str, fields: Fields) -> CrmContact:
        properties = to_properties(fields, self.connection, self.custom)
        record = await self.client.update(contact_id=external_id, properties=properties)
        return from_record(record, self.connection, self.custom)

    async def archive(self, external_id: str) -> None:
        await self.client.archive(contact_id=external_id)

    # --- batches (≤100 inputs per request) ---------------------------------------------------

    async def read_many(self, external_ids: Sequence[str]) -> dict[str, CrmContact]:
        found: dict[str, CrmContact] = {}
        for chunk in _chunks(list(dict.fromkeys(external_ids))):
            records = await self.client.batch_read(ids=chunk, properties=self.properties)
            for record in records:
                contact = from_record(record, self.connection, self.custom)
                found[contact.external_id] = contact
        return found

    async def find_many_by_email(self, emails: Sequence[str]) -> dict[str, CrmContact]:
        """The live contacts with these emails, by lower-cased email (``batch/read`` with
        ``idProperty=email``)."""
        found: dict[str, CrmContact] = {}
        wanted = list(dict.fromkeys(_email(e) for e in emails))
        for chunk in _chunks(wanted):
            records = await self.client.batch_read(
                ids=chunk, properties=self.properties, id_property="email"
            )
            for record in records:
                contact = from_record(record, self.connection, self.custom)
                found[_email(contact.fields.get("email") or "")] = contact
        return found

    async def write_many(
        self, writes: Sequence[ContactWrite], *, create_missing: bool
    ) -> list[WriteResult]:
        """Known ids: ``batch/update`` by id (only the changed fields). Unknown ids:
        ``batch/upsert`` by email with ``create_missing`` (an existing contact is updated, so a
        duplicate email cannot arise), else ``batch/read`` by email then ``batch/update`` (never
        creates). A 207's per-input errors fail their own inputs with HubSpot's message; a
        failure of a whole request (429, 5xx, network) raises."""
        results: dict[int, WriteResult] = {}
        updates: list[tuple[int, str, Fields]] = []  # (write index, contact id, changes)
        unknown: list[int] = []
        for i, write in enumerate(writes):
            if write.contact_id is not None:
                updates.append((i, write.contact_id, write.changes()))
            else:
                unknown.append(i)
        if unknown and not create_missing:
            found = await self.find_many_by_email([writes[i].email for i in unknown])
            for i in unknown:
                contact = found.get(_email(writes[i].email))
                if contact is None:
                    results[i] = ContactNotFound(
                        f"no contact in {self.connection} has the email {writes[i].email} "
                        "and create_missing is off",
                        connection=self.connection,
                    )
                else:
                    updates.append((i, contact.external_id, writes[i].changes(contact.fields)))
                    results[i] = contact  # stands unless the update below says otherwise
            unknown = []
        missing = await self._update(updates, writes, results)
        if missing:
            if create_missing:
                unknown += missing  # deleted in HubSpot since we last wrote it: create again
            else:
                for i in missing:
                    results[i] = ContactNotFound(
                        f"contact of {writes[i].email} not found in {self.connection}",
                        connection=self.connection,
                    )
        await self._upsert(unknown, writes, results)
        return [
            results.get(i) or MalformedResponse(f"{self.connection}: no answer for input {i}")
            for i in range(len(writes))
        ]

    async def _update(
        self,
        updates: list[tuple[int, str, Fields]],
        writes: Sequence[ContactWrite],
        results: dict[int, WriteResult],
    ) -> list[int]:
        """``batch/update``; returns the writes whose contact HubSpot does not know."""
        missing: list[int] = []
        sending = []
        for i, contact_id, changes in updates:
            if changes:
                sending.append(
                    (i, contact_id, to_properties(changes, self.connection, self.custom))
                )
            elif i not in results:  # nothing differs: no call
                results[i] = CrmContact(contact_id, dict(writes[i].fields), None, None, False, {})
        for chunk in _rounds(sending, key=lambda item: item[1]):
            inputs = [{"id": cid, "properties": props} for _, cid, props in chunk]
            by_key = {cid: i for i, cid, _ in chunk}
            answers = await self._bisect(self.client.batch_update, inputs, lambda x: x["id"])
            for cid, answer in answers.items():
                i = by_key[cid]
                if isinstance(answer, ContactNotFound):
                    missing.append(i)
                else:
                    results[i] = answer
        return missing

    async def _upsert(
        self, indexes: list[int], writes: Sequence[ContactWrite], results: dict[int, WriteResult]
    ) -> None:
        sending = []
        for i in indexes:
            fields = writes[i].changes({})
            fields["email"] = writes[i].email
            sending.append(
                (i, _email(writes[i].email), to_properties(fields, self.connection, self.custom))
            )
        # Two users may share an email: one input per email per request.
        for chunk in _rounds(sending, key=lambda item: item[1]):
            inputs = [
                {"id": email, "idProperty": "email", "properties": props}
                for _, email, props in chunk
            ]
            answers = await self._bisect(self.client.batch_upsert, inputs, lambda x: x["id"])
            for i, email, _ in chunk:
                results[i] = answers[email]

    async def _bisect(
        self, send: Any, inputs: list[dict[str, Any]], key: Any
    ) -> dict[str, WriteResult]:
        """One batch request; each input's answer by its key (id or email). Should HubSpot
        refuse a whole batch for one bad input (a 400 rather than a 207), the batch is halved
        until the bad input fails alone: its neighbours still go through."""
        try:
            body = await send(inputs=inputs)
        except (InvalidContact, DuplicateContact) as exc:
            if len(inputs) == 1:
                return {key(inputs[0]): exc}
            half = len(inputs) // 2
            return {
                **await self._bisect(send, inputs[:half], key),
                **await self._bisect(send, inputs[half:], key),
            }
        answers: dict[str, WriteResult] = {}
        keys = {key(item) for item in inputs}
        for record in body.get("results") or []:
            contact = from_record(record, self.connection, self.custom)
            email = _email(contact.fields.get("email") or "")
            # Update answers are keyed by id, upsert answers by email.
            answers[contact.external_id if contact.external_id in keys else email] = contact
        for error in body.get("errors") or []:
            for failed in _error_ids(error):
                answers[failed] = self._input_error(error)
        for item in inputs:
            answers.setdefault(
                key(item),
                MalformedResponse(
                    f"{self.connection}: the batch answer does not mention {key(item)}",
                    connection=self.connection,
                    body=body,
                ),
            )
        return answers

    def _input_error(self, error: Any) -> Exception:
        """One input's error of a 207 answer, as the CRM error its job acts on."""
        error = error if isinstance(error, dict) else {}
        category = str(error.get("category") or "")
        message = str(error.get("message") or "rejected")
        context: dict[str, Any] = {
            "connection": self.connection,
            "provider_message": message,
            "body": error,
        }
        if category == "OBJECT_NOT_FOUND":
            return ContactNotFound(f"Contact not found in {self.connection}", **context)
        if category == "CONFLICT":
            return DuplicateContact(
                f"A contact with this email already exists in {self.connection}",
                existing_id=existing_id(message),
                **context,
            )
        return InvalidContact(f"{self.connection} rejected the contact: {message}", **context)


def _email(value: str) -> str:
    return value.strip().lower()


def _error_ids(error: Any) -> list[str]:
    context = error.get("context") if isinstance(error, dict) else None
    ids = context.get("ids") if isinstance(context, dict) else None
    return [_email(str(i)) for i in ids] if isinstance(ids, list) else []


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), BATCH_LIMIT):
        yield items[start : start + BATCH_LIMIT]


def _rounds(items: list[Any], key: Any) -> Iterable[list[Any]]:
    """Requests of at most 100 inputs, no key twice in one request (later ones wait a round,
    keeping their order)."""
    while items:
        chunk: list[Any] = []
        rest: list[Any] = []
        seen: set[Any] = set()
        for item in items:
            if len(chunk) < BATCH_LIMIT and key(item) not in seen:
                seen.add(key(item))
                chunk.append(item)
            else:
                rest.append(item)
        yield chunk
        items = rest
