"""The ``switchboard`` command as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.support import SWITCHBOARD, Backend, Process, switchboard_env, wait_until


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWITCHBOARD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_serve_refuses_a_public_bind_without_a_key(tmp_path: Path) -> None:
    env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/x.db", None), tmp_path)
    result = run(["serve", "--host", "0.0.0.0", "--port", "0"], env, tmp_path)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching anything


def test_invalid_configuration_exits_2_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "switchboard.toml").write_text(
        '[connections.events]\nkind = "xml_feed"\nurl = "http://x"\ninterval = "often"\n'
    )
    env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/x.db", None), tmp_path)
    result = run(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert "connections.events.xml_feed.interval" in result.stderr
    env["SWITCHBOARD_WORKER_CONCURRENCY"] = "zero"
    result = run(["config", "show"], env, tmp_path)
    assert result.returncode == 2 and "worker_concurrency" in result.stderr


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "switchboard.toml").write_text(
        '[server]\napi_keys = ["${MY_KEY}"]\n'
        '[connections.hubspot]\nkind = "hubspot"\n'
        'auth = { type = "oauth2", client_id = "cid", client_secret = "very-secret-1", '
        'refresh_token = "refresh-secret-2" }\n'
    )
    env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/x.db", None), tmp_path)
    env["MY_KEY"] = "api-key-secret-3"
    env["SWITCHBOARD_SECRET_KEY"] = "encryption-secret-4"
    result = run(["config", "show"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    for secret in ("very-secret-1", "refresh-secret-2", "api-key-secret-3", "encryption-secret-4"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["connections"]["hubspot"]["auth"]["client_id"] == "cid"
    assert shown["connections"]["hubspot"]["auth"]["client_secret"] == "**********"
    assert shown["settings"]["database_url"].startswith("sqlite+aiosqlite")


def test_config_show_masks_passwords_and_query_values_in_urls(tmp_path: Path) -> None:
    (tmp_path / "switchboard.toml").write_text(
        '[connections.crm]\nkind = "hubspot"\nbase_url = "http://ann:url-secret-5@127.0.0.1:9"\n'
        'auth = { type = "token", token = "t" }\n'
        '[connections.events]\nkind = "xml_feed"\nurl = "http://127.0.0.1:9/feed?key=query-secret-6"\n'
    )
    env = switchboard_env(
        Backend("postgresql+asyncpg://bob:db-secret-7@127.0.0.1:1/x", None), tmp_path
    )
    result = run(["config", "show"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    for secret in ("url-secret-5", "query-secret-6", "db-secret-7"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["settings"]["database_url"] == "postgresql+asyncpg://bob:***@127.0.0.1:1/x"
    assert shown["connections"]["crm"]["base_url"] == "http://ann:***@127.0.0.1:9"
    assert shown["connections"]["events"]["url"] == "http://127.0.0.1:9/feed?key=***"


def test_db_upgrade(tmp_path: Path) -> None:
    env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/x.db", None), tmp_path)
    result = run(["db", "upgrade"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_zero_configuration_answers_health(tmp_path: Path) -> None:
    env = switchboard_env(Backend("sqlite+aiosqlite:///./switchboard.db", None), tmp_path)
    del env["SWITCHBOARD_DATABASE_URL"]  # the default: ./switchboard.db
    port = free_port()
    proc = Process(["serve", "--port", str(port)], env, tmp_path, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=30, interval=0.1)
        ready = httpx.get(f"{base}/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        mode = (tmp_path / "switchboard.db").exists()
        assert mode
        # The sandbox's HubSpot posts signed webhooks to this hub: a contact created "in the
        # HubSpot UI" reaches the contacts store without any sync.
        hubspot = next(
            line.split(": ", 1)[1].split()[0]  # "URL  (port 8101 was taken)"
            for line in proc.output().splitlines()
            if line.strip().startswith("sandbox hubspot:")
        )
        created = httpx.post(
            f"{hubspot}/_sandbox/hubspot/contacts",
            json={"properties": {"email": "zero@example.com", "firstname": "Zero"}},
        )
        assert created.status_code in (200, 201), created.text

        def stored() -> bool:
            r = httpx.get(f"{base}/contacts", params={"email": "zero@example.com"}, timeout=5)
            return r.status_code == 200 and len(r.json()["items"]) == 1

        wait_until(stored, timeout=30, interval=0.2)
        journal = subprocess.run(
            [
                "python3",
                "-c",
                "import sqlite3,sys;print(sqlite3.connect(sys.argv[1])"
                ".execute('pragma journal_mode').fetchone()[0])",
                str(tmp_path / "switchboard.db"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert journal == "wal"
    finally:
        # uvicorn re-raises the SIGTERM it handled after a clean shutdown
        assert proc.stop() in (0, -15), proc.output()
    log_lines = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "no_api_key" for line in log_lines)


def test_logs_carry_request_fields_and_no_secrets(tmp_path: Path) -> None:
    env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/x.db", None), tmp_path)
    env["SWITCHBOARD_API_KEYS"] = "super-secret-key-42"
    port = free_port()
    proc = Process(["serve", "--port", str(port)], env, tmp_path, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(f"{base}/health"), timeout=30, interval=0.1)
        r = httpx.get(
            f"{base}/connections",
            headers={"Authorization": "Bearer super-secret-key-42", "X-Request-ID": "req-77"},
        )
        assert r.status_code == 200
        assert httpx.get(f"{base}/connections").status_code == 401
    finally:
        proc.stop()
    output = proc.output()
    assert "super-secret-key-42" not in output
    requests = [json.loads(line) for line in output.splitlines() if '"event": "request"' in line]
    seen = next(r for r in requests if r.get("request_id") == "req-77")
    assert seen["method"] == "GET" and seen["route"] == "/connections"
    assert seen["status"] == 200 and isinstance(seen["duration_ms"], float)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
