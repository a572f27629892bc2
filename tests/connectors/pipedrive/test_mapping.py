"""The pure mapping between Pipedrive persons and the hub's fields, and round trips through the
simulator's store (Pipedrive's own derivation of first and last name from ``name``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from switchboard.connectors.crm import InvalidContact, MalformedResponse, UnknownField
from switchboard.connectors.pipedrive.mapping import (
    from_person,
    needs_current,
    parse_time,
    to_person_body,
)
from switchboard.connectors.pipedrive.simulator.store import Store, as_api

PERSON: dict[str, Any] = {
    "id": 42,
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": [
        {"value": "ada@old.example", "primary": False, "label": "home"},
        {"value": "Ada@Example.com", "primary": True, "label": "work"},
    ],
    "phone": [{"value": "+44 20 7946 0000", "primary": True, "label": "mobile"}],
    "org_id": {"name": "Analytical Engines", "value": 3},
    "org_name": "Analytical Engines",
    "add_time": "2024-01-02 03:04:05",
    "update_time": "2024-02-03 04:05:06",
    "active_flag": True,
}


def test_a_person_reads_as_our_fields() -> None:
    contact = from_person(PERSON, "pd")
    assert contact.external_id == "42"
    assert contact.fields == {
        "email": "ada@example.com",  # the primary item, lower-cased
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": "+44 20 7946 0000",
        "company": "Analytical Engines",
    }
    assert contact.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert contact.updated_at == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert contact.archived is False
    assert contact.raw is PERSON


def test_empty_lists_and_missing_values_read_as_none() -> None:
    person = {
        "id": 7,
        "name": "Grace",
        "first_name": "Grace",
        "last_name": None,
        "email": [{"value": "", "primary": True}],  # how Pipedrive shows "no email"
        "phone": [],
        "org_id": None,
        "org_name": None,
        "active_flag": False,
        "update_time": "not a time",
    }
    contact = from_person(person, "pd")
    assert contact.fields == {
        "email": None,
        "firstName": "Grace",
        "lastName": None,
        "phone": None,
        "company": None,
    }
    assert contact.archived is True and contact.updated_at is None


def test_a_webhook_person_with_a_bare_org_id_has_its_org_name() -> None:
    person = {**PERSON, "org_id": 3}
    assert from_person(person, "pd").fields["company"] == "Analytical Engines"


@pytest.mark.parametrize("bad", [None, [], {"name": "x"}, {"id": True}, {"id": ""}])
def test_a_person_without_an_id_is_malformed(bad: Any) -> None:
    with pytest.raises(MalformedResponse):
        from_person(bad, "pd")


def test_times_are_utc() -> None:
    assert parse_time("2024-12-31 23:59:59") == datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_time("2024-12-31T23:59:59Z") is None
    assert parse_time(None) is None


def test_a_create_joins_the_name_and_lists_the_primary_email() -> None:
    body = to_person_body(
        {"email": " Ada@Example.COM", "firstName": "Ada", "lastName": "Lovelace", "phone": "+1"},
        "pd",
        create=True,
    )
    assert body == {
        "name": "Ada Lovelace",
        "email": [{"value": "ada@example.com", "primary": True, "label": "work"}],
        "phone": [{"value": "+1", "primary": True, "label": "work"}],
    }


def test_without_a_name_the_email_stands_in_and_reads_back_as_no_name() -> None:
    body = to_person_body({"email": "solo@example.com"}, "pd", create=True)
    assert body["name"] == "solo@example.com"
    store = Store()
    person = as_api(store.create(body))
    assert from_person(person, "pd").fields["firstName"] is None
    assert from_person(person, "pd").fields["lastName"] is None
    with pytest.raises(InvalidContact):
        to_person_body({"phone": "+1"}, "pd", create=True)


def test_company_and_unknown_fields_are_refused() -> None:
    with pytest.raises(UnknownField) as caught:
        to_person_body({"email": "a@b.io", "company": "ACME"}, "pd", create=True)
    assert caught.value.field == "company" and caught.value.status_code == 422
    with pytest.raises(UnknownField):
        to_person_body({"nickname": "x"}, "pd", PERSON)
    # Clearing the company detaches the person from its organization.
    assert to_person_body({"company": None}, "pd") == {"org_id": None}


def test_an_update_replaces_the_primary_item_and_keeps_the_others() -> None:
    body = to_person_body({"email": "new@example.com", "phone": None}, "pd", PERSON)
    assert body == {
        "email": [
            {"value": "new@example.com", "primary": True, "label": "work"},
            {"value": "ada@old.example", "primary": False, "label": "home"},
        ],
        "phone": [],
    }
    cleared = to_person_body({"email": None}, "pd", PERSON)
    assert cleared["email"] == [{"value": "ada@old.example", "primary": True, "label": "home"}]


def test_one_name_part_is_completed_from_the_person() -> None:
    assert needs_current({"lastName": "King"})
    assert not needs_current({"firstName": "Ada", "lastName": "King"})
    assert needs_current({"firstName": None, "lastName": None})  # the email stands in
    assert needs_current({"phone": "+1"})
    assert not needs_current({"company": None})
    assert to_person_body({"lastName": "King"}, "pd", PERSON) == {"name": "Ada King"}
    assert to_person_body({"firstName": None, "lastName": None}, "pd", PERSON) == {
        "name": "ada@example.com"
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "phone": "+1"},
        {"email": "grace@example.com", "firstName": "Grace", "lastName": None, "phone": None},
        {"email": "solo@example.com", "firstName": None, "lastName": None, "phone": None},
    ],
)
def test_round_trip_through_pipedrives_store(fields: dict[str, Any]) -> None:
    store = Store()
    created = as_api(store.create(to_person_body(fields, "pd", create=True)))
    assert from_person(created, "pd").fields == {**fields, "company": None}
    change = {"firstName": "Augusta", "phone": "+2"}
    updated = as_api(store.update(created["id"], to_person_body(change, "pd", created)))
    assert from_person(updated, "pd").fields == {**fields, **change, "company": None}


def test_a_two_word_first_name_comes_back_split_where_pipedrive_splits_it() -> None:
    """API v1 writes one name; Pipedrive splits it at the first space (a known loss)."""
    store = Store()
    body = to_person_body(
        {"email": "m@example.com", "firstName": "Mary Ann", "lastName": "Smith"}, "pd", create=True
    )
    fields = from_person(as_api(store.create(body)), "pd").fields
    assert (fields["firstName"], fields["lastName"]) == ("Mary", "Ann Smith")


PLAN = "5ba4c3e2f1d0a9b8c7d6e5f4a3b2c1d0e9f8a7b6"


def test_custom_fields_are_top_level_keys_of_the_person() -> None:
    custom = {"plan": PLAN, "seats": "0" * 40, "address": "1" * 40}
    person = {**PERSON, PLAN: "gold", "0" * 40: 12, "1" * 40: {"formatted": "x"}}
    fields = from_person(person, "pd", custom).fields
    assert (fields["plan"], fields["seats"], fields["address"]) == ("gold", "12", None)
    assert from_person({**PERSON, PLAN: ""}, "pd", custom).fields["plan"] is None
    assert "plan" not in from_person(PERSON, "pd", custom).fields  # not returned: unknown
    assert "plan" not in from_person(person, "pd").fields  # not configured: not read
    body = to_person_body({"plan": "gold", "seats": None}, "pd", PERSON, custom=custom)
    assert body == {PLAN: "gold", "0" * 40: None}
    with pytest.raises(UnknownField) as caught:
        to_person_body({"tier": "x"}, "pd", PERSON, custom=custom)
    assert caught.value.loc == ("body", "fields", "tier")
