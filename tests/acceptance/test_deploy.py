"""deploy/: the compose file is valid YAML whose services run the commands the scale-out test
runs, with options the CLI accepts, and its connections file is a valid configuration. (No
container engine runs here: this is what can be checked without one.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from switchboard.cli import app
from switchboard.config import load_config, load_settings
from tests.support import REPO

DEPLOY = REPO / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def parse(argv: list[str]) -> tuple[str, Any]:
    """Parse ``switchboard …`` as the CLI would, without running it (bad options raise);
    returns the command's name and its context (``.params``)."""
    assert argv[0] == "switchboard"
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("switchboard", list(argv[1:]))
    name, *rest = argv[1:]
    while True:
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command {name!r}"
        if not hasattr(sub, "get_command"):  # a leaf command: parse its options
            return name, sub.make_context(name, list(rest), parent=ctx)
        command, ctx = sub, sub.make_context(name, list(rest), parent=ctx)
        name, *rest = rest


def test_services_run_the_commands_of_the_acceptance_test(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"postgres", "api", "worker", "sandbox"}
    name, api = parse(services["api"]["command"])
    assert name == "serve"
    assert api.params["no_runtime"] and api.params["workers"] == 2
    assert api.params["host"] == "0.0.0.0"
    name, worker = parse(services["worker"]["command"])
    assert name == "worker" and worker.params["metrics_port"] == 9100
    assert services["worker"]["deploy"]["replicas"] == 2
    name, sandbox = parse(services["sandbox"]["command"])
    assert name == "sandbox" and sandbox.params["port"] == 8101
    name, _ = parse(services["migrate"]["command"])
    assert name == "upgrade"
    with pytest.raises(Exception, match="--bogus"):
        parse(["switchboard", "serve", "--bogus"])


def test_every_switchboard_service_shares_the_database_and_keys(compose: dict[str, Any]) -> None:
    for name in ("migrate", "api", "worker"):
        service = compose["services"][name]
        env = service["environment"]
        assert env["SWITCHBOARD_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["SWITCHBOARD_DATABASE_URL"]
        assert env["SWITCHBOARD_SECRET_KEY"].startswith("${SWITCHBOARD_SECRET_KEY:?")
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    postgres = compose["services"]["postgres"]
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    # Scheduled reports are written by the runtime: every worker mounts the same volume.
    assert any(v.startswith("reports:") for v in compose["services"]["worker"]["volumes"])
    assert set(compose["volumes"]) == {"pgdata", "reports"}


def test_connections_file_is_valid(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_API_KEY": "k" * 20, "TODO_WEBHOOK_SECRET": "whsec_dGVzdA=="}
    settings = load_settings(config=DEPLOY / "switchboard.toml", data_dir=tmp_path)
    config = load_config(settings, env=env)
    assert config.api_keys == ("k" * 20,)
    assert {c.kind for c in config.hub.connections.values()} == {
        "hubspot",
        "xml_feed",
        "todo_webhooks",
    }
    assert config.hub.users.crm_connection == "hubspot"


def test_image_installs_the_package_and_runs_unprivileged() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text().splitlines()
    froms = [line for line in dockerfile if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "python:3.11-slim" for line in froms)
    assert any(line.startswith("RUN pip install") and line.endswith(" .") for line in dockerfile)
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
