"""``/openapi.json`` tells the truth: which operations need the API key, and every error status
with the body it really has (each error produced through HTTP and validated with jsonschema)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from switchboard.config import HubConfig

OPEN = {"/health", "/ready", "/metrics", "/connect/{token}", "/oauth/callback"}
"""No API key: probes, and the connect flow's browser pages (the link's token is the key)."""
JSON = {"content-type": "application/json"}


@pytest.fixture
def hub_config() -> HubConfig:
    # No [contacts] default_connection, and a connection that is not a CRM: two 422s that
    # used to be strings. Nothing here is ever called (every request fails before).
    return HubConfig.model_validate(
        {"connections": {"events": {"kind": "xml_feed", "url": "http://127.0.0.1:9/feed"}}}
    )


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def is_open(path: str) -> bool:
    return path in OPEN or path.startswith("/webhooks/")


async def test_security_is_declared_exactly_where_the_key_is_required(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert not [p for p in spec["paths"] if p.startswith("/console")]
    checked = 0
    for path, method, operation in operations(spec):
        url = re.sub(r"\{[^}]+\}", "x", path)
        # No key at all: a 401 exactly where the schema says a key is needed.
        response = await client.request(method, url, headers={"X-API-Key": ""})
        if is_open(path):
            assert "security" not in operation, (method, path)
            assert response.status_code != 401, (method, path)
        else:
            assert operation["security"] == [{"ApiKey": []}, {"Bearer": []}], (method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert "401" in operation["responses"], (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(operation["responses"]), (method, path)
        checked += 1
    assert checked >= 20


# (method, path template, request arguments, status)
ERRORS: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("GET", "/contacts", "/contacts", {"headers": {"X-API-Key": "wrong"}}, 401),
    ("GET", "/contacts", "/contacts", {"params": {"connection": "nope"}}, 404),
    ("GET", "/contacts", "/contacts", {"params": {"cursor": "!!"}}, 400),
    ("GET", "/contacts", "/contacts", {"params": {"limit": "0"}}, 422),
    ("GET", "/contacts/{contact_id}", "/contacts/x", {}, 404),
    ("POST", "/contacts", "/contacts", {"json": {"email": "a@b.io"}}, 422),
    ("POST", "/contacts", "/contacts", {"json": {"email": "a@b.io", "connection": "events"}}, 422),
    ("POST", "/contacts", "/contacts", {"json": {"email": "a@b.io", "connection": "nope"}}, 404),
    ("POST", "/contacts", "/contacts", {"json": {"email": "a@b.io", "nick": "x"}}, 422),
    ("PATCH", "/contacts/{contact_id}", "/contacts/x", {"json": {"firstName": "x"}}, 404),
    ("PATCH", "/users/{user_id}", "/users/u1", {"content": b"\x80", "headers": JSON}, 400),
    ("PATCH", "/users/{user_id}", "/users/u1", {"content": b"[" * 100_000, "headers": JSON}, 400),
    ("PATCH", "/users/{user_id}", "/users/u1", {"content": b"{bad", "headers": JSON}, 422),
    ("PATCH", "/users/{user_id}", "/users/u1", {"content": b" " * 2_000_000, "headers": JSON}, 413),
    ("GET", "/users/{user_id}", "/users/u1", {}, 404),
    ("GET", "/tasks", "/tasks", {"params": {"connection": "nope"}}, 404),
    ("GET", "/tasks", "/tasks", {"params": {"cursor": "x"}}, 422),
    ("GET", "/tasks/{task_id}", "/tasks/t1", {"params": {"connection": "nope"}}, 404),
    ("GET", "/connections/{name}", "/connections/nope", {}, 404),
    ("POST", "/connections/{name}/sync", "/connections/nope/sync", {}, 404),
    ("GET", "/connections/{name}/runs", "/connections/nope/runs", {}, 404),
    ("GET", "/connections/{name}/runs", "/connections/events/runs", {"params": {"limit": 0}}, 422),
    ("GET", "/reports/tasks", "/reports/tasks", {"params": {"userId": "u", "start": "x"}}, 422),
    (
        "GET",
        "/reports/tasks",
        "/reports/tasks",
        {"params": {"userId": "u", "start": "2024-01-02", "end": "2024-01-01"}},
        422,
    ),
    ("GET", "/proxy/{connection}/{path}", "/proxy/nope/x", {}, 404),
    ("POST", "/proxy/{connection}/{path}", "/proxy/events/x", {"content": b"{}"}, 422),
    ("GET", "/search", "/search", {"headers": {"X-API-Key": "wrong"}}, 401),
    ("GET", "/search", "/search", {"params": {"starts_at": "yesterday"}}, 400),
]


@pytest.mark.parametrize(
    ("method", "template", "url", "kwargs", "status"),
    ERRORS,
    ids=[f"{m} {u} {s}" for m, _, u, _, s in ERRORS],
)
async def test_every_error_is_documented_with_its_real_shape(
    client: httpx.AsyncClient,
    method: str,
    template: str,
    url: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    response = await client.request(method, url, **kwargs)
    assert response.status_code == status, response.text
    documented = spec["paths"][template][method.lower()]["responses"]
    assert str(status) in documented, f"{method} {template} answers {status}, undocumented"
    schema = documented[str(status)]["content"]["application/json"]["schema"]
    jsonschema.validate(
        response.json(),
        {**schema, "components": spec["components"]},
        cls=jsonschema.Draft202012Validator,
    )
    if status == 422:
        assert isinstance(response.json()["detail"], list)
