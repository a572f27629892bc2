"""Settings and the connections file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from switchboard.config import load_config
from switchboard.connectors.hubspot.settings import HubSpotConnection
from switchboard.connectors.mapped_crm.settings import MappedCrmConnection
from switchboard.settings import ConfigError, load_settings, mask_url, parse_duration

DESIGN_EXAMPLE = """
[server]
api_keys = ["${SWITCHBOARD_API_KEY}"]

[connections.hubspot]
kind = "hubspot"
auth = { type = "token", token = "${HUBSPOT_TOKEN}" }
webhook_secret = "${HUBSPOT_CLIENT_SECRET:-dev-secret}"
sync_interval = "5m"

[connections.acme]
kind = "mapped_crm"
base_url = "https://crm.acme.example"
auth = { type = "client_credentials", token_url = "/token", client_id = "c", client_secret = "s" }
paths = { list = "/v1/acme/contacts", item = "/v1/acme/contacts/{id}", create = "/v1/acme/contacts" }
fields = { firstName = "acme_first_name", lastName = "acme_last_name", email = "acme_email" }
rate_limit = "10/60s"

[connections.events]
kind = "xml_feed"
url = "https://provider.example/api/events"
interval = "30s"
timezone = "UTC"

[connections.todo]
kind = "todo_webhooks"
secret = "whsec_abc"

[contacts]
default_connection = "hubspot"

[users]
crm_connection = "hubspot"
create_missing = true

[reports]
interval = "60s"
dir = "./reports"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switchboard.toml"
    path.write_text(text)
    return path


def test_design_example_loads_with_interpolation(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE)
    settings = load_settings(_env_file=None, config=path)
    config = load_config(settings, env={"SWITCHBOARD_API_KEY": "k1", "HUBSPOT_TOKEN": "pat-x"})
    hub = config.hub
    hubspot = hub.connections["hubspot"]
    assert isinstance(hubspot, HubSpotConnection)
    assert hubspot.auth.type == "token"
    assert hubspot.auth.token.get_secret_value() == "pat-x"  # type: ignore[union-attr]
    assert hubspot.webhook_secret is not None
    assert hubspot.webhook_secret.get_secret_value() == "dev-secret"
    assert hubspot.sync_interval == timedelta(minutes=5)
    acme = hub.connections["acme"]
    assert isinstance(acme, MappedCrmConnection)
    assert acme.rate_limit is not None and acme.rate_limit.requests == 10
    assert acme.rate_limit.per == timedelta(seconds=60)
    assert config.api_keys == ("k1",)
    assert hub.users.crm_connection == "hubspot"


def test_missing_variable_names_the_field(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, config=write(tmp_path, DESIGN_EXAMPLE))
    with pytest.raises(ConfigError, match=r"connections\.hubspot\.auth\.token: .*HUBSPOT_TOKEN"):
        load_config(settings, env={"SWITCHBOARD_API_KEY": "k"})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[connections.x]\nkind = "hubspot"\n', r"connections\.x\.hubspot\.auth: Field required"),
        (
            '[connections.x]\nkind = "salesforce"\n',
            r"connections\.x: .*expected tags: 'hubspot', 'mapped_crm', 'pipedrive', 'xml_feed', 'todo_webhooks'",
        ),
        (
            '[connections.x]\nkind = "mapped_crm"\nbase_url = "http://crm"\n'
            'auth = { type = "oauth2", client_id = "c", client_secret = "s", refresh_token = "r" }\n'
            'paths = { list = "/l", item = "/l/{id}", create = "/l" }\nfields = { email = "e" }\n',
            r"connections\.x\.auth\.token_url: required \(mapped_crm has no default token endpoint\)",
        ),
        (
            '[connections.x]\nkind = "xml_feed"\nurl = "u"\ninterval = "soon"\n',
            r"connections\.x\.xml_feed\.interval: .*not a duration",
        ),
        (
            '[connections.x]\nkind = "todo_webhooks"\nsecrett = "typo"\n',
            r"connections\.x\.todo_webhooks\.secrett: Extra inputs",
        ),
        ('[users]\ncrm_connection = "nope"\n', r"users\.crm_connection: no connection named"),
        ("this is not toml", r"switchboard\.toml"),
    ],
)
def test_invalid_files_name_the_bad_field(tmp_path: Path, toml: str, message: str) -> None:
    settings = load_settings(_env_file=None, config=write(tmp_path, toml))
    with pytest.raises(ConfigError, match=message):
        load_config(settings, env={})


def test_hubspot_oauth2_defaults_to_its_token_endpoint(tmp_path: Path) -> None:
    toml = (
        '[connections.x]\nkind = "hubspot"\n'
        'auth = { type = "oauth2", client_id = "c", client_secret = "s", refresh_token = "r" }\n'
    )
    config = load_config(load_settings(_env_file=None, config=write(tmp_path, toml)), env={})
    provider = config.provider("x")
    assert provider is not None and provider.oauth is not None
    assert provider.oauth.token_path == "/oauth/v1/token"


def test_no_file_is_an_empty_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(load_settings(_env_file=None), env={})
    assert config.source is None and config.hub.connections == {}


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, config=tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(settings, env={"SWITCHBOARD_CONFIG": str(tmp_path / "nope.toml")})


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_API_KEYS", "a, b")
    monkeypatch.setenv("SWITCHBOARD_WORKER_CONCURRENCY", "3")
    settings = load_settings(_env_file=None)
    assert [k.get_secret_value() for k in settings.api_keys] == ["a", "b"]
    assert settings.worker_concurrency == 3
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigError, match="SWITCHBOARD_database_url"):
        load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("500ms", 0.5), (90, 90)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+asyncpg://bob:pw@db:5432/x?ssl=require",
            "postgresql+asyncpg://bob:***@db:5432/x?ssl=***",
        ),
        ("sqlite+aiosqlite:///./switchboard.db", "sqlite+aiosqlite:///./switchboard.db"),
        ("http://user@h/p#token=abc", "http://user@h/p"),
        ("http://[::1]:80/feed?key=abc&flag", "http://[::1]:80/feed?key=***&flag"),
        ("http://a:b:c@h/", "http://a:***@h/"),
        ("http://[::1/x?key=abc", "***"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


HUBSPOT_CUSTOM = (
    '[connections.crm]\nkind = "hubspot"\nauth = { type = "token", token = "t" }\n'
    "custom_fields = { %s }\n"
)
MAPPED_CUSTOM = (
    '[connections.crm]\nkind = "mapped_crm"\nbase_url = "https://crm.example"\n'
    'auth = { type = "token", token = "t" }\n'
    'paths = { list = "/c", item = "/c/{id}", create = "/c" }\n'
    'fields = { email = "email" }\ncustom_fields = { %s }\n'
)


def test_custom_fields_load_for_each_crm_kind(tmp_path: Path) -> None:
    toml = HUBSPOT_CUSTOM % 'plan = "plan_tier", leadScore = "hs_lead_score"'
    config = load_config(load_settings(_env_file=None, config=write(tmp_path, toml)), env={})
    crm = config.hub.connections["crm"]
    assert isinstance(crm, HubSpotConnection)
    assert crm.custom_fields == {"plan": "plan_tier", "leadScore": "hs_lead_score"}
    toml = MAPPED_CUSTOM % 'plan = "account.plan", tag = "tags[0]"'
    config = load_config(load_settings(_env_file=None, config=write(tmp_path, toml)), env={})
    mapped = config.hub.connections["crm"]
    assert isinstance(mapped, MappedCrmConnection)
    assert mapped.custom_fields == {"plan": "account.plan", "tag": "tags[0]"}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (HUBSPOT_CUSTOM % 'Plan = "plan_tier"', r"crm\.hubspot\.custom_fields: .*'Plan': a name"),
        (HUBSPOT_CUSTOM % '"plan-tier" = "x"', r"custom_fields: .*'plan-tier': a name"),
        (HUBSPOT_CUSTOM % ('a%s = "x"' % ("b" * 63)), r"custom_fields: .*a name is"),
        (HUBSPOT_CUSTOM % 'email = "work_email"', r"custom_fields: .*'email' is a standard"),
        (HUBSPOT_CUSTOM % 'plan = " "', r"custom_fields: .*'plan': .* property name is empty"),
        (
            HUBSPOT_CUSTOM % 'plan = "tier", level = "tier"',
            r"custom_fields: .*'plan' and 'level' both map to 'tier'",
        ),
        (HUBSPOT_CUSTOM % "plan = 3", r"custom_fields\.plan: Input should be a valid string"),
        (MAPPED_CUSTOM % 'plan = "a..b"', r"crm\.mapped_crm\.custom_fields\.plan: "),
        (MAPPED_CUSTOM % 'firstName = "first"', r"mapped_crm\.custom_fields: .*standard field"),
    ],
)
def test_invalid_custom_fields_name_the_field(tmp_path: Path, toml: str, message: str) -> None:
    settings = load_settings(_env_file=None, config=write(tmp_path, toml))
    with pytest.raises(ConfigError, match=message):
        load_config(settings, env={})
