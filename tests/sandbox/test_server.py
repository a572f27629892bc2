"""Sandbox runner, zero-config wiring, the CLI, and the fault/request-log control endpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.sandbox import NAMES, Faults, Sandbox, zero_config
from tests.sandbox.conftest import FEVER_DIR


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    sandbox = Sandbox(contacts=5, fever_dir=FEVER_DIR)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(autouse=True)
def clean(box: Sandbox) -> None:
    for name in box.names:
        with httpx.Client(base_url=box.urls[name]) as http:
            http.delete("/_sandbox/faults")
            http.delete("/_sandbox/requests")


def test_every_simulator_answers(box: Sandbox) -> None:
    assert list(box.urls) == list(NAMES)
    urls = box.urls
    auth = {"Authorization": "Bearer pat-sandbox"}
    assert httpx.get(f"{urls['hubspot']}/crm/v3/objects/contacts", headers=auth).status_code == 200
    nango = httpx.get(
        f"{urls['nango']}/connections/sandbox-hubspot",
        params={"provider_config_key": "hubspot"},
        headers={"Authorization": "Bearer nango-sandbox"},
    )
    assert nango.status_code == 200
    token = httpx.post(
        f"{urls['acme']}/token", json={"client_id": "sandbox", "client_secret": "sandbox-secret"}
    )
    assert token.status_code == 200
    assert httpx.get(f"{urls['events']}/api/events").text.startswith("<?xml")
    assert httpx.get(f"{urls['todo']}/_sandbox/todo").json()["signed"] is True
    persons = httpx.get(
        f"{urls['pipedrive']}/v1/persons", headers={"x-api-token": "pipedrive-sandbox-token"}
    )
    assert persons.status_code == 200 and persons.json()["success"] is True


def test_zero_config_is_a_valid_hub_config(box: Sandbox) -> None:
    hub = HubConfig.model_validate(zero_config(box.urls))

    assert set(hub.connections) == {"hubspot", "acme", "events", "todo", "pipedrive"}
    assert hub.contacts.default_connection == "hubspot"
    assert hub.users.crm_connection == "hubspot"
    hubspot = hub.connections["hubspot"]
    assert hubspot.kind == "hubspot"
    assert hubspot.base_url == box.urls["hubspot"]
    acme = hub.connections["acme"]
    assert acme.kind == "mapped_crm"
    assert acme.fields == {
        "firstName": "acme_first_name",
        "lastName": "acme_last_name",
        "email": "acme_email",
    }
    pipedrive = hub.connections["pipedrive"]
    assert pipedrive.kind == "pipedrive" and pipedrive.base_url == box.urls["pipedrive"]
    assert box.pipedrive is not None
    settings = box.pipedrive.webhooks.settings
    assert pipedrive.webhook_user is not None and pipedrive.webhook_password is not None
    assert settings.http_auth_user == pipedrive.webhook_user.get_secret_value()
    assert settings.http_auth_password == pipedrive.webhook_password.get_secret_value()
    events = hub.connections["events"]
    assert events.kind == "xml_feed"
    assert httpx.get(events.url).status_code == 200
    only_acme = HubConfig.model_validate(zero_config({"acme": box.urls["acme"]}))
    assert only_acme.contacts.default_connection is None


def test_faults_endpoint_round_trip(box: Sandbox) -> None:
    with httpx.Client(base_url=box.urls["acme"]) as http:
        assert http.get("/_sandbox/faults").json() == Faults().model_dump()
        changed = http.post("/_sandbox/faults", json={"latency_ms": 5, "down": True})
        assert changed.json()["down"] == "503"
        assert changed.json()["latency_ms"] == 5
        merged = http.patch("/_sandbox/faults", json={"down": None})
        assert merged.json()["latency_ms"] == 5
        replaced = http.put("/_sandbox/faults", json={"storm": True})
        assert replaced.json()["latency_ms"] == 0
        assert http.put("/_sandbox/faults", json={"error_rate": 2}).status_code == 422
        assert http.put("/_sandbox/faults", json={"nope": 1}).status_code == 422


def test_down_storm_and_errors_use_the_providers_bodies(box: Sandbox) -> None:
    hubspot = httpx.Client(
        base_url=box.urls["hubspot"], headers={"Authorization": "Bearer pat-sandbox"}
    )
    events = httpx.Client(base_url=box.urls["events"])
    with hubspot, events:
        hubspot.put("/_sandbox/faults", json={"storm": True})
        storm = hubspot.get("/crm/v3/objects/contacts")
        assert storm.status_code == 429
        assert storm.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert storm.headers["Retry-After"] == "1"

        events.put("/_sandbox/faults", json={"down": "503"})
        down = events.get("/api/events")
        assert down.status_code == 503
        assert down.json() == {
            "detail": "Event API is not available at the moment. Come back later"
        }

        hubspot.put("/_sandbox/faults", json={"error_rate": 1.0, "error_status": 502})
        failed = hubspot.get("/crm/v3/objects/contacts")
        assert failed.status_code == 502
        assert failed.json()["status"] == "error"

        hubspot.put("/_sandbox/faults", json={"down": "reset"})
        with pytest.raises(httpx.TransportError):
            hubspot.get("/crm/v3/objects/contacts")

        # Control endpoints stay reachable whatever the faults.
        assert hubspot.get("/_sandbox/hubspot/state").status_code == 200


def test_error_rate_is_a_share(box: Sandbox) -> None:
    with httpx.Client(base_url=box.urls["events"]) as http:
        http.put("/_sandbox/faults", json={"error_rate": 0.5})
        statuses = [http.get("/api/events").status_code for _ in range(60)]
    failures = statuses.count(500)
    assert 15 <= failures <= 45
    assert statuses.count(200) == 60 - failures


def test_latency(box: Sandbox) -> None:
    with httpx.Client(base_url=box.urls["todo"]) as http:
        http.put("/_sandbox/faults", json={"latency_ms": 150})
        response = http.get("/_sandbox/todo")  # control endpoints are never delayed
        assert response.elapsed.total_seconds() < 0.15
    with httpx.Client(base_url=box.urls["events"]) as http:
        http.put("/_sandbox/faults", json={"latency_ms": 150})
        assert http.get("/api/events").elapsed.total_seconds() >= 0.15


def test_request_log_counts_and_resets(box: Sandbox) -> None:
    with httpx.Client(
        base_url=box.urls["hubspot"], headers={"Authorization": "Bearer pat-sandbox"}
    ) as http:
        http.get("/crm/v3/objects/contacts")
        http.get("/crm/v3/objects/contacts", params={"limit": 2})
        http.get("/crm/v3/objects/contacts/999")
        http.get("/_sandbox/hubspot/state")
        log = http.get("/_sandbox/requests").json()
        assert log["total"] == 3
        assert log["counts"] == {
            "GET /crm/v3/objects/contacts": 2,
            "GET /crm/v3/objects/contacts/999": 1,
        }
        assert [r["status"] for r in log["requests"]] == [200, 200, 404]
        assert log["requests"][1]["query"] == "limit=2"
        http.delete("/_sandbox/requests")
        assert http.get("/_sandbox/requests").json()["total"] == 0


def test_only_selects_and_validates() -> None:
    with Sandbox(only="acme,hubspot") as sandbox:
        assert list(sandbox.urls) == ["hubspot", "acme"]
        assert sandbox.nango is None
    with pytest.raises(ValueError, match="unknown simulator"):
        Sandbox(only="hubspot,salesforce")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_serves_and_stops_on_ctrl_c() -> None:
    args = ["sandbox", "--only", "hubspot,nango", "--port", "0", "--contacts", "3"]
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from switchboard.cli import main; main()",
            *args,
            "--latency-ms",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as a terminal sends it: a child inherits an ignored SIGINT (pytest-xdist's
        # workers ignore it), and Python then never raises KeyboardInterrupt.
        preexec_fn=_default_sigint,
    ) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline().strip() for _ in range(2)]
            assert [line.split(": ", 1)[0] for line in lines] == ["hubspot", "nango"]
            hubspot_url = lines[0].split(": ", 1)[1]
            assert hubspot_url.startswith("http://127.0.0.1:")
            contacts = httpx.get(
                f"{hubspot_url}/crm/v3/objects/contacts",
                headers={"Authorization": "Bearer pat-sandbox"},
            ).json()
            assert len(contacts["results"]) == 3
            assert httpx.get(f"{hubspot_url}/_sandbox/faults").json()["latency_ms"] == 1
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_taken_fixed_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        strict = Sandbox(only="hubspot", port=port)
        with pytest.raises(RuntimeError, match=f"cannot bind 127.0.0.1:{port}"):
            strict.start()
        sandbox = Sandbox(only="hubspot", port=port, fallback=True, unique_ids=True)
        with sandbox:
            assert sandbox.moved == {"hubspot": port}
            url = sandbox.urls["hubspot"]
            assert url != f"http://127.0.0.1:{port}"
            created = httpx.post(
                f"{url}/_sandbox/hubspot/contacts",
                json={"properties": {"email": "moved@example.com"}},
            )
            assert created.status_code in (200, 201), created.text
            # Created while running: past every id an earlier run could have handed out.
            assert int(created.json()["id"]) > 10**10


def test_hubspot_refuses_addresses_at_a_rejected_domain() -> None:
    hubspot = HubSpotSimulator(rejected_email_domains=["bounce.example.org"])
    transport = httpx.ASGITransport(app=hubspot.app)

    async def create(email: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://hubspot") as http:
            return await http.post(
                "/crm/v3/objects/contacts",
                json={"properties": {"email": email}},
                headers={"Authorization": "Bearer pat-sandbox"},
            )

    refused = asyncio.run(create("ada@bounce.example.org"))
    assert refused.status_code == 400
    body = refused.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert "INVALID_EMAIL" in body["message"]
    assert asyncio.run(create("ada@example.org")).status_code == 201


def test_the_simulators_listen_on_sockets_asyncio_sets_tcp_nodelay_on() -> None:
    """asyncio turns TCP_NODELAY on for accepted sockets only when the listening socket says it
    is TCP (``proto == IPPROTO_TCP``); with ``proto == 0`` every kept-alive answer waited ~40 ms
    for the client's delayed ACK (measured: 44 ms a request before, 1.4 ms after)."""
    with Sandbox(only="hubspot,pipedrive") as sandbox:
        for name, sock in sandbox._sockets.items():
            assert sock.proto == socket.IPPROTO_TCP, name
