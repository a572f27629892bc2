"""The HTTP foundation: health, readiness, auth, errors, request ids, metrics, body limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, EmailStr

from switchboard.errors import Conflict
from tests.support import API_KEY


async def test_health_is_open(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"X-API-Key": ""})
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_reports_database_and_migrations(client: httpx.AsyncClient) -> None:
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"]["current"] == body["checks"]["migrations"]["head"]


async def test_ready_is_503_when_schema_is_behind(client: httpx.AsyncClient, app: Any) -> None:
    async with app.state.db.session() as session:
        await session.execute(__import__("sqlalchemy").text("DELETE FROM alembic_version"))
    r = await client.get("/ready")
    assert r.status_code == 503
    assert "db upgrade" in r.json()["detail"]


async def test_business_endpoint_requires_key(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as anon:
        r = await anon.get("/connections")
        assert r.status_code == 401
        assert r.json() == {"detail": "Missing or invalid API key"}
        assert r.headers["content-type"] == "application/json"
        assert (await anon.get("/connections", headers={"X-API-Key": "wrong"})).status_code == 401
        ok = await anon.get("/connections", headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200
        assert (await anon.get("/connections", headers={"X-API-Key": API_KEY})).status_code == 200
        for open_path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs"):
            assert (await anon.get(open_path)).status_code == 200, open_path


async def test_request_id_is_generated_or_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert len(r.headers["x-request-id"]) == 32
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/nowhere", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}
    assert r.headers["x-request-id"] != "bad id\twith spaces"


class _Body(BaseModel):
    email: EmailStr
    count: int


def _probe_router() -> APIRouter:
    router = APIRouter()

    @router.post("/_probe")
    async def probe(body: _Body) -> dict[str, Any]:
        return {"ok": True}

    @router.get("/_boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @router.get("/_conflict")
    async def conflict() -> None:
        raise Conflict("Already there")

    return router


@pytest.fixture
def probed(app: Any) -> Any:
    app.include_router(_probe_router())
    return app


async def test_validation_errors_name_the_field(probed: Any, client: httpx.AsyncClient) -> None:
    r = await client.post("/_probe", json={"email": "not-an-email", "count": "x"})
    assert r.status_code == 422
    fields = {tuple(item["loc"]) for item in r.json()["detail"]}
    assert ("body", "email") in fields
    assert ("body", "count") in fields
    assert "input" not in r.json()["detail"][0]
    r = await client.post(
        "/_probe", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


async def test_unexpected_error_is_500_json_without_internals(
    probed: Any, client: httpx.AsyncClient
) -> None:
    r = await client.get("/_boom")
    assert r.status_code == 500
    body = r.json()
    assert body["detail"] == "Internal server error"
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert body["request_id"] == r.headers["x-request-id"]


async def test_app_error_renders_its_status(probed: Any, client: httpx.AsyncClient) -> None:
    r = await client.get("/_conflict")
    assert r.status_code == 409
    assert r.json() == {"detail": "Already there"}


async def test_body_size_limit(probed: Any, client: httpx.AsyncClient) -> None:
    big = b"x" * 2_000_000
    r = await client.post("/_probe", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "larger than" in r.json()["detail"]

    async def chunks() -> Any:  # no Content-Length: the streamed count must catch it
        for _ in range(40):
            yield b"x" * 65536

    r = await client.post("/_probe", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/connections/unknown")
    text = (await client.get("/metrics")).text
    assert (
        'switchboard_http_requests_total{method="GET",route="/connections/{name}",status="404"}'
        in text
    )
    assert "switchboard_http_request_duration_seconds_bucket" in text


async def test_openapi_documents_error_responses(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    get_conn = spec["paths"]["/connections/{name}"]["get"]
    assert {"200", "401", "404"} <= set(get_conn["responses"])
