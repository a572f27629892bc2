"""The hub as ``pip install .`` installs it, started from an unrelated directory: the simulator
serves the provider's own sample feeds, shipped inside the package (nothing beside a checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import wait_until

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "src" / "switchboard" / "connectors" / "xml_feed" / "fever"
PIP_INSTALL = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile"]
SWITCHBOARD_CLI = [sys.executable, "-c", "from switchboard.cli import main; main()"]


def test_an_installed_hub_serves_the_providers_samples_from_anywhere(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [*PIP_INSTALL, "--target", str(target), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first; its dependencies are this environment's.
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import switchboard; print(switchboard.__file__)"],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target)), where.stdout
    log = tmp_path / "sandbox.log"
    with open(log, "wb") as out:
        sandbox = subprocess.Popen(
            [*SWITCHBOARD_CLI, "sandbox", "--only", "events", "--port", "0"],
            env=env,
            cwd=elsewhere,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: "events: http" in log.read_text(), timeout=60, interval=0.1)
            url = next(
                line.split(": ", 1)[1].strip()
                for line in log.read_text().splitlines()
                if line.startswith("events: ")
            )
            answer = httpx.get(f"{url}/api/events", timeout=10)
            assert answer.status_code == 200
            assert answer.content == (SAMPLES / "planList" / "response_1.xml").read_bytes()
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=15)
