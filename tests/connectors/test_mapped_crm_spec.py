"""The declarative connector's parts: field paths, pagination strategies and auth variants over
HTTP against the People and ACME simulators, signature schemes, rate-limit header names, and
start-up validation whose errors name the field."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from switchboard.config import Config, ConfigError, HubConfig, load_config
from switchboard.connectors.crm import MalformedResponse, crm_client
from switchboard.connectors.mapped_crm import FieldMap, MappedCrmContacts
from switchboard.connectors.mapped_crm.paginators import PagePagination, next_page
from switchboard.connectors.mapped_crm.paths import MISSING, parse_path
from switchboard.connectors.mapped_crm.ratelimit import read_rate_limit
from switchboard.connectors.mapped_crm.signature import sign, verify_signature
from switchboard.connectors.mapped_crm.simulators import acme as acme_mod
from switchboard.connectors.mapped_crm.simulators import people as people_mod
from switchboard.connectors.mapped_crm.simulators.people import PeopleSimulator
from switchboard.connectors.mapped_crm.spec import RateLimitHeaders, SignatureScheme
from switchboard.http import Outbound
from switchboard.http.testing import FakeClock
from switchboard.sandbox import AcmeSimulator, Sandbox, zero_config
from tests.support import Backend, make_settings

# --- field paths ----------------------------------------------------------------------------------

PERSON = {
    "uid": "p1",
    "name": {"first": "Ada", "last": None},
    "emails": [{"value": "old@x.io"}, {"value": "ada@x.io", "primary": True}],
    "tags": ["a", "b"],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("uid", "p1"),
        ("name.first", "Ada"),
        ("name.last", None),
        ("name.middle", MISSING),
        ("emails[primary].value", "ada@x.io"),
        ("emails[0].value", "old@x.io"),
        ("tags[1]", "b"),
        ("tags[2]", MISSING),
        ("uid.deeper", MISSING),
    ],
)
def test_paths_read_nested_values(path: str, expected: Any) -> None:
    assert parse_path(path).read(PERSON) is expected or parse_path(path).read(PERSON) == expected


def test_primary_falls_back_to_the_first_item() -> None:
    assert (
        parse_path("emails[primary].value").read({"emails": [{"value": "a"}, {"value": "b"}]})
        == "a"
    )
    assert parse_path("emails[primary].value").read({"emails": []}) is MISSING


def test_writing_builds_and_merges_nested_objects() -> None:
    fmap = FieldMap(
        "crm",
        {
            "firstName": "name.first",
            "lastName": "name.last",
            "email": "emails[primary].value",
            "company": "org.name",
        },
        id_field="uid",
    )
    out = fmap.to_vendor(
        {"firstName": "Ada", "lastName": "L", "email": " ADA@x.io", "company": "E"}
    )
    assert out == {
        "name": {"first": "Ada", "last": "L"},
        "emails": [{"primary": True, "value": "ada@x.io"}],
        "org": {"name": "E"},
    }
    assert fmap.to_vendor({"email": None, "company": None}) == {"emails": [], "org": {"name": None}}
    contact = fmap.from_vendor(PERSON)
    assert contact.external_id == "p1"
    assert contact.fields == {"firstName": "Ada", "lastName": None, "email": "ada@x.io"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1767322800, datetime(2026, 1, 2, 3, 0, tzinfo=UTC)),
        (1767322800000, datetime(2026, 1, 2, 3, 0, tzinfo=UTC)),
    ],
)
def test_updated_at_is_parsed(value: Any, expected: datetime) -> None:
    fmap = FieldMap("crm", {"email": "mail"}, updated_at_field="meta.changed")
    assert fmap.from_vendor({"id": 1, "meta": {"changed": value}}).updated_at == expected


def test_an_unreadable_updated_at_is_a_malformed_answer() -> None:
    fmap = FieldMap("crm", {"email": "mail"}, updated_at_field="changed")
    with pytest.raises(MalformedResponse, match="'changed' is not a timestamp"):
        fmap.from_vendor({"id": 1, "changed": "yesterday"})


# --- start-up validation ----------------------------------------------------------------------------

BASE = """
[connections.mycrm]
kind = "mapped_crm"
base_url = "http://crm"
auth = {type = "token", token = "t"}
paths = {list = "/p", item = "/p/{id}", create = "/p"}
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'fields = {email = "emails[latest].value"}',
            r"connections\.mycrm\.mapped_crm\.fields\.email: .*unknown selector \[latest\]",
        ),
        ('fields = {email = "a..b"}', r"connections\.mycrm\.mapped_crm\.fields\.email: .*bad path"),
        (
            'fields = {email = "emails[1].value"}',
            r"fields\.email: .*cannot be written",
        ),
        ('fields = {}\nid_field = "a b"', r"connections\.mycrm\.mapped_crm\.id_field: .*bad path"),
        (
            'fields = {}\npagination = {type = "cursor"}',
            r"connections\.mycrm\.mapped_crm\.pagination\.cursor: .*exactly one of cursor_path",
        ),
        (
            'fields = {}\npagination = {type = "cursor", cursor_path = "x[", link_header = true}',
            r"pagination\.cursor\.cursor_path: .*bad path",
        ),
        (
            'fields = {}\npagination = {type = "cursor", link_header = true, follow = "param"}',
            r"pagination\.cursor: .*follow",
        ),
        (
            'fields = {}\npagination = {type = "page", page_size = 0}',
            r"pagination\.page\.page_size: .*greater than or equal to 1",
        ),
        (
            'fields = {}\npagination = {type = "scroll"}',
            r"connections\.mycrm\.mapped_crm\.pagination: .*'scroll'",
        ),
        (
            'fields = {}\nsignature = {signed = "timestamp.body"}',
            r"connections\.mycrm\.mapped_crm\.signature: .*timestamp_header: required",
        ),
        ('fields = {}\nsignature = {algorithm = "md5"}', r"signature\.algorithm: "),
        ('fields = {}\nrecords_path = "results.[0]"', r"mapped_crm\.records_path: .*bad path"),
        ('fields = {}\nupdate_method = "POST"', r"mapped_crm\.update_method: "),
        (
            'fields = {nickname = "nick"}',
            r"connections\.mycrm\.mapped_crm\.fields: .*unknown hub fields \['nickname'\]",
        ),
    ],
)
def test_bad_declarations_fail_at_start_naming_the_field(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = tmp_path / "switchboard.toml"
    path.write_text(BASE + extra + "\n")
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_config(settings.model_copy(update={"config": path}), env={})


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ('{type = "api_key", key = "k"}', r"auth\.api_key: .*exactly one of header or query_param"),
        (
            '{type = "api_key", key = "k", header = "X", query_param = "k"}',
            r"auth\.api_key: .*exactly one",
        ),
        ('{type = "basic", password = "p"}', r"auth\.basic\.username: Field required"),
    ],
)
def test_bad_auth_fails_at_start(tmp_path: Path, auth: str, message: str) -> None:
    path = tmp_path / "switchboard.toml"
    path.write_text(BASE.replace('{type = "token", token = "t"}', auth) + "fields = {}\n")
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_config(settings.model_copy(update={"config": path}), env={})


# --- pagination and auth over HTTP ---------------------------------------------------------------------

PEOPLE_CONNECTION: dict[str, Any] = {
    "kind": "mapped_crm",
    "auth": {"type": "api_key", "header": "X-Api-Key", "key": people_mod.API_KEY},
    "paths": {"list": "/v2/people", "item": "/v2/people/{id}", "create": "/v2/people"},
    "fields": {"firstName": "name.first", "email": "emails[primary].value"},
    "id_field": "uid",
    "records_path": "results.items",
    "update_method": "PATCH",
}

Connect = Callable[..., AsyncIterator[MappedCrmContacts]]


@pytest.fixture
def people(asgi_server: Any) -> tuple[PeopleSimulator, str]:
    sim = PeopleSimulator()
    return sim, str(asgi_server(sim.app))


@pytest.fixture
async def outbounds(tmp_path: Path) -> AsyncIterator[list[Outbound]]:
    made: list[Outbound] = []
    yield made
    for out in made:
        await out.aclose()


def connect(
    outbounds: list[Outbound], tmp_path: Path, url: str, **changes: Any
) -> MappedCrmContacts:
    conn = {**PEOPLE_CONNECTION, "base_url": url, **changes}
    hub = HubConfig.model_validate({"connections": {"people": conn}})
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    out = Outbound(Config(settings, hub, None), clock=FakeClock())
    outbounds.append(out)
    crm = crm_client(out, out.config, "people", mode="request")
    assert isinstance(crm, MappedCrmContacts)
    return crm


PAGINATIONS = {
    "cursor-param": {"type": "cursor", "cursor_path": "paging.next_cursor", "page_size": 20},
    "link-header": {"type": "cursor", "link_header": True, "page_size": 20},
    "cursor-without-page-size": {
        "type": "cursor",
        "cursor_path": "paging.next_cursor",
        "size_param": "",
        "page_size": 50,
    },
    "offset": {"type": "offset", "offset_param": "offset", "limit_param": "limit", "page_size": 20},
}


@pytest.mark.parametrize("name", sorted(PAGINATIONS))
async def test_every_pagination_reads_every_record_once(
    people: tuple[PeopleSimulator, str], outbounds: list[Outbound], tmp_path: Path, name: str
) -> None:
    sim, url = people
    for i in range(45):
        sim.create({"emails": [{"value": f"p{i}@x.io", "primary": True}]})
    crm = connect(outbounds, tmp_path, url, pagination=PAGINATIONS[name])
    pages = [records async for records in crm.client.pages()]
    # The simulator's own page size is 50: without a size parameter the CRM's applies.
    assert [len(p) for p in pages] == ([45] if name == "cursor-without-page-size" else [20, 20, 5])
    uids = [crm.map.record_id(r) for page in pages for r in page]
    assert uids == list(sim.people)
    assert sim.log.count("GET", "/v2/people") == len(pages)


async def test_a_short_page_ends_page_numbers_without_a_next_page_field(
    outbounds: list[Outbound], tmp_path: Path
) -> None:
    with Sandbox(only=["acme"]) as box:
        acme = box.acme
        assert isinstance(acme, AcmeSimulator)
        acme.rate_limit = 10_000
        for i in range(25):
            acme.create({"acme_email": f"a{i}@x.io"})
        data = zero_config(box.urls)
        conn = data["connections"]["acme"]
        conn["pagination"] = {"type": "page", "next_page_path": "", "page_size": 10}
        hub = HubConfig.model_validate({"connections": {"acme": conn}})
        settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
        out = Outbound(Config(settings, hub, None), clock=FakeClock())
        outbounds.append(out)
        crm = crm_client(out, out.config, "acme", mode="request")
        assert isinstance(crm, MappedCrmContacts)
        assert [len(p) async for p in crm.client.pages()] == [10, 10, 5]
        assert (await crm.find_by_email("A24@x.io")) is not None


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "api_key", "header": "X-Api-Key", "key": people_mod.API_KEY},
        {"type": "api_key", "query_param": "api_key", "key": people_mod.API_KEY},
        {"type": "basic", "username": people_mod.API_KEY},
    ],
    ids=["header", "query", "basic"],
)
async def test_auth_variants_reach_the_crm_and_a_wrong_key_is_refused(
    people: tuple[PeopleSimulator, str], outbounds: list[Outbound], tmp_path: Path, auth: Any
) -> None:
    sim, url = people
    crm = connect(outbounds, tmp_path, url, auth=auth)
    created = await crm.create({"email": "a@x.io", "firstName": "A"})
    assert sim.people[created.external_id]["name"] == {"first": "A"}
    wrong = {**auth, ("username" if auth["type"] == "basic" else "key"): "wrong"}
    refused = connect(outbounds, tmp_path, url, auth=wrong)
    with pytest.raises(Exception) as caught:
        await refused.get(created.external_id)
    assert getattr(caught.value, "provider_status", None) == 401


def test_a_next_url_that_leaves_the_crm_is_refused() -> None:
    from switchboard.connectors.mapped_crm.spec import CursorPagination

    pagination = CursorPagination(type="cursor", link_header=True)
    request = httpx.Request("GET", "http://crm.example/v2/people")
    response = httpx.Response(
        200, headers={"Link": '<http://evil.example/steal>; rel="next"'}, request=request
    )
    with pytest.raises(MalformedResponse, match="leaves"):
        next_page(pagination, None, body={}, records=[], response=response, connection="c")
    relative = httpx.Response(
        200, headers={"Link": '</v2/people?cursor=x>; rel="next"'}, request=request
    )
    following = next_page(pagination, None, body={}, records=[], response=relative, connection="c")
    assert following == "http://crm.example/v2/people?cursor=x"


def test_a_next_page_that_does_not_advance_is_malformed() -> None:
    response = httpx.Response(200, request=httpx.Request("GET", "http://crm/p"))
    with pytest.raises(MalformedResponse, match="next_page 2 after page 2"):
        next_page(
            PagePagination(),
            2,
            body={"next_page": 2},
            records=[],
            response=response,
            connection="c",
        )


# --- signatures -----------------------------------------------------------------------------------------


def test_the_default_scheme_is_acmes() -> None:
    body = b'{"id": "e1"}'
    secret = SecretStr(acme_mod.WEBHOOK_SECRET)
    headers = {"x-acme-signature": acme_mod.sign(acme_mod.WEBHOOK_SECRET, body)}
    assert verify_signature(SignatureScheme(), secret, headers, body) is None
    assert verify_signature(SignatureScheme(), secret, headers, body + b" ") == (
        "Invalid X-Acme-Signature"
    )


def test_a_timestamped_scheme_refuses_stale_missing_and_forged() -> None:
    scheme = SignatureScheme(
        header="X-People-Signature",
        algorithm="sha512",
        encoding="base64",
        prefix="v1=",
        signed="timestamp.body",
        timestamp_header="X-People-Timestamp",
        tolerance_seconds=60,
    )
    body, secret = b"{}", people_mod.WEBHOOK_SECRET
    now = int(time.time())
    good = {
        "x-people-timestamp": str(now),
        "x-people-signature": people_mod.sign(secret, body, str(now)),
    }
    assert sign(scheme, secret, body, str(now)) == good["x-people-signature"]
    assert verify_signature(scheme, SecretStr(secret), good, body) is None
    assert verify_signature(scheme, SecretStr("other"), good, body) == "Invalid X-People-Signature"
    assert verify_signature(scheme, SecretStr(secret), good, body, now=now + 61) == (
        "Stale X-People-Timestamp"
    )
    missing = {"x-people-signature": good["x-people-signature"]}
    assert "Missing" in str(verify_signature(scheme, SecretStr(secret), missing, body))


def test_sha1_hex_without_a_prefix() -> None:
    import hashlib
    import hmac

    scheme = SignatureScheme(header="X-Sig", algorithm="sha1", prefix="")
    body = b"payload"
    value = hmac.new(b"s", body, hashlib.sha1).hexdigest()
    assert verify_signature(scheme, SecretStr("s"), {"x-sig": value}, body) is None


# --- rate-limit headers -------------------------------------------------------------------------------------


async def test_the_configured_rate_limit_headers_are_read_from_the_crm(
    people: tuple[PeopleSimulator, str],
) -> None:
    sim, url = people
    sim.rate_limit = 3
    names = RateLimitHeaders(
        remaining="X-Quota-Remaining",
        reset="X-Quota-Reset",
        reset_is="seconds",
        limit="X-Quota-Limit",
    )

    def read(headers: httpx.Headers, now: float) -> Any:
        return read_rate_limit(names, headers, now)

    async with httpx.AsyncClient(base_url=url, headers={"X-Api-Key": people_mod.API_KEY}) as http:
        first = read((await http.get("/v2/people")).headers, time.time())
        assert (first.remaining, first.limit) == (2, 3)
        assert first.reset_in is not None and 0 < first.reset_in <= 60
        await http.get("/v2/people")
        await http.get("/v2/people")
        refused = await http.get("/v2/people")
        assert refused.status_code == 429
        assert read(refused.headers, time.time()).remaining == 0
    # ACME's names are the default; an epoch reset is told apart by its size.
    acme_like = {
        "x-ratelimit-remaining": "4",
        "x-ratelimit-reset": "2000000030",
        "x-ratelimit-limit": "10",
    }
    reading = read_rate_limit(RateLimitHeaders(), acme_like, now=2_000_000_000)
    assert (reading.remaining, reading.reset_in, reading.limit) == (4, 30.0, 10)
    only_retry = read_rate_limit(RateLimitHeaders(), {"retry-after": "7"}, now=0)
    assert only_retry.reset_in == 7.0 and only_retry.remaining is None


def test_the_record_selector_finds_the_list() -> None:
    from switchboard.connectors.mapped_crm.paginators import select_records

    assert select_records("results.items", {"results": {"items": [1]}}, "c") == ([1], False)
    assert select_records("", [1, 2], "c") == ([1, 2], False)  # the body is the list
    assert select_records("data", [1], "c") == ([1], True)  # a bare list: one last page
    with pytest.raises(MalformedResponse, match=r"at 'results\.items'"):
        select_records("results.items", {"results": {}}, "c")
    with pytest.raises(MalformedResponse, match="as the body"):
        select_records("", {"data": []}, "c")
