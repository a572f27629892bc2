"""The ingest's memory does not grow with the number of plans (``switchboard sync`` in a
subprocess, peak RSS measured by the process itself)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.connectors.xml_feed.simulator import EventFeedSimulator
from switchboard.db import Database
from tests.events.conftest import CONNECTION
from tests.support import Backend, switchboard_env

# Runs the CLI in this interpreter and reports its peak RSS (KiB) on the last line. VmHWM, not
# getrusage: Linux carries ru_maxrss over exec, so a child of this (large) test process would
# report the test's own peak.
MEASURE = """
import sys
from switchboard.cli import app
try:
    app(["sync", sys.argv[1], "--full"])
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("peak", peak, file=sys.stderr)
"""


def ingest_peak_mib(env: dict[str, str], cwd: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, CONNECTION],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1].split()
    assert last[0] == "peak", done.stderr[-3000:]
    return int(last[1]) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
async def test_ingest_memory_does_not_grow_with_the_number_of_plans(
    tmp_path: Path, feed: EventFeedSimulator, feed_url: str
) -> None:
    # The parser and the staging are the same on both databases: measured on SQLite only (on
    # PostgreSQL the 80,000-plan run takes minutes on this machine and measures nothing more).
    backend = Backend(f"sqlite+aiosqlite:///{tmp_path}/hub.db", None)
    db = Database(backend.url)
    await db.upgrade()
    await db.dispose()
    config = tmp_path / "switchboard.toml"
    config.write_text(
        f'[connections.{CONNECTION}]\nkind = "xml_feed"\nurl = "{feed_url}"\ninterval = "1h"\n'
    )
    env = switchboard_env(backend, tmp_path, SWITCHBOARD_CONFIG=str(config))
    peaks = {}
    for base_plans in (1_000, 8_000):  # 5,000 and 40,000 plans, ~225 bytes each
        feed.configure(mode="generated", base_plans=base_plans, plans=5, zones=0, seed=base_plans)
        feed.document()  # generated before the measurement
        peaks[base_plans] = ingest_peak_mib(env, tmp_path)
    # Holding every plan (as before staging) costs about 2 KiB a plan: 35,000 more plans added
    # ~75 MiB. Streamed and staged, what grows is caches (~20 MiB measured).
    grown = peaks[8_000] - peaks[1_000]
    assert grown < 45, f"peak RSS (MiB) {peaks}: +{grown:.0f} MiB for 35,000 more plans"
    print(f"peak RSS (MiB) by base plans: {peaks}")
