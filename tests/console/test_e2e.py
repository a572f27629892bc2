"""The console end to end: the hub on a real loopback port with its runtime, the sandbox's
HubSpot and event feed behind it, driven in headless Chromium (Debian's ``chromium`` package,
through Playwright for Python).

Without ``/usr/bin/chromium`` (or Playwright) the test skips locally and fails under ``CI=true``.
Screenshots go to ``$CONSOLE_SCREENSHOTS`` when set (``docs/console`` to refresh the README's),
else to the test's temporary directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.app import create_app
from switchboard.config import Config, HubConfig, Settings
from switchboard.connectors.hubspot.simulator import CLIENT_ID, CLIENT_SECRET
from switchboard.db import Database
from switchboard.sandbox.server import Sandbox
from tests.events.conftest import FEVER_DIR
from tests.support import API_KEY, Backend, eventually, make_settings

pytestmark = pytest.mark.acceptance

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google, which this machine's
# closed network refuses (see the machine notes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = "<script>document.title='pwned'</script>"


def _require_browser() -> Any:
    """Playwright's async API, or skip (locally) / fail (CI) when the browser is missing."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright import async_api
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: the console end-to-end test needs Chromium: {problem}")
        pytest.skip(problem)
    return async_api


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(["hubspot", "events"], contacts=30, fever_dir=FEVER_DIR)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def hub_config(sandbox: Sandbox, tmp_path: Path) -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "hubspot": {
                    "kind": "hubspot",
                    "base_url": sandbox.urls["hubspot"],
                    "auth": {"type": "token", "token": "pat-sandbox"},
                    "sync_interval": "1h",
                },
                "events": {
                    "kind": "xml_feed",
                    "url": sandbox.urls["events"] + "/api/events",
                    "interval": "1h",
                },
                "todo": {"kind": "todo_webhooks"},
            },
            "integrations": {
                "hubspot-app": {
                    "provider": "hubspot",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "base_url": sandbox.urls["hubspot"],
                    "authorize_url": sandbox.urls["hubspot"] + "/oauth/authorize",
                }
            },
            "users": {"crm_connection": "hubspot", "retry_for": "1s"},
            "reports": {"interval": "10m", "dir": str(tmp_path / "reports")},
        }
    )


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    # One try per call and a breaker that stays closed: the user's job dies quickly while
    # HubSpot is down, and its replay reaches HubSpot as soon as it is back.
    return make_settings(
        backend, tmp_path, api_keys=[API_KEY], http_max_attempts=1, http_breaker_failures=1000
    )


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


async def _seed_tasks(api: httpx.AsyncClient) -> None:
    """Tasks spread over the last report windows (10 minutes each)."""
    now = datetime.now(UTC)
    events: list[tuple[str, str, str, timedelta, bool]] = [
        ("created", "t1", "ada", timedelta(minutes=55), False),
        ("created", "t2", "ada", timedelta(minutes=42), False),
        ("created", "t3", "grace", timedelta(minutes=31), False),
        ("updated", "t1", "ada", timedelta(minutes=24), True),
        ("created", "t4", "grace", timedelta(minutes=18), False),
        ("created", "t5", "ada", timedelta(minutes=12), False),
        ("updated", "t3", "grace", timedelta(minutes=8), True),
        ("created", "t6", "linus", timedelta(minutes=4), False),
    ]
    for event, task, user, ago, done in events:
        content = HOSTILE if task == "t6" else f"Task {task} of {user}"
        body = {
            "event": event,
            "timestamp": (now - ago).isoformat(),
            "metadata": {"userId": user, "id": task, "content": content, "isCompleted": done},
        }
        r = await api.post("/webhooks/todo", json=body, headers={"X-API-Key": ""})
        assert r.status_code == 202, r.text
    bad = {"event": "archived", "timestamp": now.isoformat(), "metadata": body["metadata"]}
    r = await api.post("/webhooks/todo", json=bad, headers={"X-API-Key": ""})
    assert r.status_code == 400  # a failed delivery for the webhooks page


async def _dead_user_job(api: httpx.AsyncClient, sandbox: Sandbox) -> int:
    """A real dead job: the user's CRM update while HubSpot answers 503, past its deadline."""
    faults = sandbox.urls["hubspot"] + "/_sandbox/faults"
    async with httpx.AsyncClient() as plain:
        assert (await plain.put(faults, json={"down": "503"})).status_code == 200
        r = await api.patch("/users/ada", json={"email": "ada@example.com", "firstName": "Ada"})
        assert r.status_code == 200, r.text

        async def dead() -> bool:
            items = (await api.get("/admin/jobs", params={"state": "dead"})).json()["items"]
            return any(i["kind"] == "users.propagate" for i in items)

        await eventually(dead, timeout=30)
        assert (await plain.delete(faults)).status_code == 200
    [job] = (await api.get("/admin/jobs", params={"state": "dead"})).json()["items"]
    assert "503" in job["last_error"], job
    return int(job["id"])


async def test_console_in_chromium(
    config: Config,
    db: Database,
    sandbox: Sandbox,
    asgi_server: Any,
    shots: Path,
) -> None:
    pw = _require_browser()
    expect = pw.expect
    base = asgi_server(create_app(config, runtime=True))
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": API_KEY}) as api:
        await _seed_tasks(api)
        dead_id = await _dead_user_job(api, sandbox)

    async with pw.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})

            # Log in: a bad key first, then the right one.
            await page.goto(base + "/console")
            await expect(page).to_have_url(base + "/console/login")
            await page.fill("#api_key", "not-the-key")
            await page.click("button[type=submit]")
            await expect(page.get_by_role("alert")).to_contain_text("not valid")
            await page.fill("#api_key", API_KEY)
            await page.screenshot(path=shots / "login.png")
            await page.click("button[type=submit]")
            await expect(page).to_have_url(base + "/console/connections")

            # The dead job, its last error, and its replay, until it succeeds.
            await page.get_by_role("link", name="Jobs", exact=True).click()
            row = page.locator(f"#job-{dead_id}")
            await expect(row).to_contain_text("users.propagate")
            await expect(row).to_contain_text("503")
            await expect(page.locator("figure.chart svg polyline").first).to_be_visible()
            await page.screenshot(path=shots / "jobs.png", full_page=True)
            await row.get_by_role("button", name="Replay").click()
            await expect(page).to_have_url(re.compile(rf"/console/jobs/{dead_id}\?replayed=1$"))
            await expect(page.locator(".job-state")).to_have_attribute(
                "data-state", "succeeded", timeout=20_000
            )
            await page.screenshot(path=shots / "job.png", full_page=True)

            # Each connection's page: Sync now, and its last run arrives by live refresh (no
            # reload); the contacts sync also brings in the contact the replayed job created.
            for name in ("events", "hubspot"):
                await page.get_by_role("link", name="Connections", exact=True).click()
                listing = page.locator("table.connections")
                await listing.get_by_role("link", name=name, exact=True).click()
                await expect(page).to_have_url(base + f"/console/connections/{name}")
                await page.get_by_role("button", name="Sync now").click()
                await expect(page.get_by_role("status")).to_contain_text(f"Sync of {name} queued")
                await expect(page.locator(".last-sync")).to_contain_text(
                    "succeeded", timeout=20_000
                )
            await expect(page.locator("#outbound")).to_contain_text("contacts")
            await expect(page.locator("#runs")).to_contain_text("succeeded")
            await page.screenshot(path=shots / "connection.png", full_page=True)
            await page.get_by_role("link", name="Connections", exact=True).click()
            await expect(page.locator("#connection-hubspot .last-sync")).to_contain_text(
                "succeeded"
            )
            await page.screenshot(path=shots / "connections.png", full_page=True)

            # The user it was for is now synced, with its history.
            await page.goto(base + "/console/users/ada")
            await expect(page.locator(".user-sync")).to_have_attribute("data-state", "synced")
            await page.screenshot(path=shots / "user.png", full_page=True)
            await page.goto(base + "/console/users")
            await expect(page.locator("table.users")).to_contain_text("ada@example.com")
            await page.screenshot(path=shots / "users.png", full_page=True)

            # The tasks chart (inline SVG), with hostile content shown as text.
            await page.get_by_role("link", name="Tasks & reports").click()
            chart = page.get_by_role("img", name="Completed, new and old tasks per report window")
            await expect(chart).to_be_visible()
            assert await chart.locator("rect").count() >= 4
            await expect(page.locator("table.latest-tasks")).to_contain_text(HOSTILE)
            assert await page.title() != "pwned"
            await page.screenshot(path=shots / "tasks.png", full_page=True)

            await page.get_by_role("link", name="Webhooks").click()
            await expect(page.locator("#webhooks-todo")).to_contain_text("Invalid event status")
            await page.screenshot(path=shots / "webhooks.png", full_page=True)

            await page.get_by_role("link", name="Feed").click()
            await expect(page.locator("#feed-events")).to_contain_text("plans stored")
            await page.screenshot(path=shots / "feed.png", full_page=True)

            await page.get_by_role("link", name="Contacts").click()
            await expect(page.locator("table.contacts tbody tr")).to_have_count(31)
            await page.get_by_placeholder("Search name or email").fill("ada@example.com")
            await page.get_by_role("button", name="Search").click()
            await expect(page.locator("table.contacts tbody tr")).to_have_count(1)
            await expect(page.locator("table.contacts")).to_contain_text("ada@example.com")
            await page.goto(base + "/console/contacts")
            await page.screenshot(path=shots / "contacts.png", full_page=True)

            # A connect link made in the console, walked by the end user: consent on the
            # sandbox's HubSpot, then the new connection is listed; its page offers a
            # re-authorisation link bound to it.
            await page.get_by_role("link", name="Connections", exact=True).click()
            await page.get_by_role("link", name="New connect link").click()
            await page.get_by_label("Integration").select_option("hubspot-app")
            await page.get_by_label("End user id").fill("u-42")
            await page.get_by_label("Organisation").fill(HOSTILE)
            await page.get_by_role("button", name="Create link").click()
            link = page.get_by_label("Connect link")
            await expect(link).to_have_value(re.compile(re.escape(base) + r"/connect/\S+$"))
            await expect(page.locator(".connect-link")).to_contain_text(HOSTILE)  # as text
            await page.screenshot(path=shots / "connect.png", full_page=True)
            await page.goto(await link.input_value())
            await page.get_by_label("HubSpot account (portal id)").fill("4242")
            await page.get_by_role("button", name="Allow").click()
            await expect(page.locator("body")).to_contain_text("hubspot-app-4242 is connected")
            await page.goto(base + "/console/connections?integration=hubspot-app")
            row = page.locator("table.connections tbody tr")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text(HOSTILE)  # the organisation, as text
            await expect(row.locator(".status")).to_contain_text("ok")
            await row.get_by_role("link", name="hubspot-app-4242").click()
            await page.get_by_role("button", name="Re-authorise").click()
            await expect(page.get_by_role("heading", level=1)).to_contain_text(
                "Re-authorisation link for hubspot-app-4242"
            )
            await expect(page.get_by_label("Connect link")).to_have_value(
                re.compile(re.escape(base) + r"/connect/\S+$")
            )
            assert await page.title() != "pwned"

            # Logging out ends the session.
            await page.get_by_role("button", name="Log out").click()
            await expect(page).to_have_url(base + "/console/login")
            await page.goto(base + "/console/jobs")
            await expect(page).to_have_url(base + "/console/login")
        finally:
            await browser.close()
