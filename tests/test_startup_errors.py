"""Start-up failures a user can cause: one line naming the cause and the setting, exit code 2,
no traceback (``--debug`` shows it)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import Backend, switchboard_env
from tests.test_cli import run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _assert_one_line(stderr: str, *needles: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) <= 3, stderr
    for needle in needles:
        assert needle in errors[0], stderr


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        (
            "postgresql+asyncpg://postgres:pw-secret@127.0.0.1:{port}/test",
            ["connection refused", "SWITCHBOARD_DATABASE_URL", "postgres:***@"],
        ),
        ("postgresql+asyncpg://postgres@no-such-host.invalid/test", ["unknown host name"]),
        ("sqlite+aiosqlite:///{tmp}/missing/folder/hub.db", ["missing/folder does not exist"]),
        ("sqlite+aiosqlite:///{tmp}/a-file/hub.db", ["a-file is not a folder"]),
    ],
)
def test_an_unusable_database_is_one_line(tmp_path: Path, url: str, needles: list[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    url = url.format(port=_free_port(), tmp=tmp_path)
    env = switchboard_env(Backend(url, None), tmp_path)
    result = run(["db", "upgrade"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    _assert_one_line(result.stderr, *needles)
    assert "pw-secret" not in result.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_serve_and_worker_check_the_database_first(tmp_path: Path, command: list[str]) -> None:
    env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/no/hub.db", None), tmp_path)
    result = run(command, env, tmp_path)
    assert result.returncode == 2, result.stderr
    _assert_one_line(result.stderr, "no does not exist", "SWITCHBOARD_DATABASE_URL")


def test_a_missing_postgresql_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/switchboard_no_such_database"
    probe = socket.socket()
    try:
        probe.settimeout(0.5)
        probe.connect(("127.0.0.1", 5432))
    except OSError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432 to ask for a missing database")
    finally:
        probe.close()
    env = switchboard_env(Backend(url, None), tmp_path)
    result = run(["db", "upgrade"], env, tmp_path)
    assert result.returncode == 2
    _assert_one_line(result.stderr, 'database "switchboard_no_such_database" does not exist')


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/no/hub.db", None), tmp_path)
    result = run(["--debug", "db", "upgrade"], env, tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr or "FileNotFoundError" in result.stderr


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = switchboard_env(Backend(f"sqlite+aiosqlite:///{tmp_path}/hub.db", None), tmp_path)
        result = run(["serve", "--port", str(port)], env, tmp_path)
    assert result.returncode == 2
    _assert_one_line(result.stderr, f"127.0.0.1:{port}", "the port is in use")
    assert not (tmp_path / "hub.db").exists()  # refused before the database or simulators
