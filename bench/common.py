"""Shared by the benchmarks: machine description, percentiles, RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def append(title: str, command: str, header: list[str], rows: list[list[str]]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {title} — {stamp}",
        "",
        f"Machine: {machine()}. Command: `{command}`.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    text = "\n".join(lines) + "\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in `bench/`.\n\n")
    with RESULTS.open("a") as f:
        f.write(text)
    return text


SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    tmp: Path, toml: str, *, access_log: bool = True, args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """`switchboard serve` on SQLite in ``tmp`` with the given connections file."""
    (tmp / "switchboard.toml").write_text(toml)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_ACCESS_LOG": "true" if access_log else "false",
        }
    )
    return launch(["serve", "--port", str(port), *args], env, tmp, port)


def launch(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    port: int,
    timeout: float = 60,
    ready: str = "/health",
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a ``switchboard`` command serving on ``port``; return it once ``ready`` answers."""
    proc = subprocess.Popen(
        [SWITCHBOARD, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}{ready}", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"switchboard {' '.join(args)} did not start")


def wrk(base: str, seconds: int, script: str, tmp: Path, connections: int = 32) -> dict[str, str]:
    """Run wrk with a Lua script; returns requests/s, p50, p99 and the non-2xx count."""
    path = tmp / "bench.lua"
    path.write_text(script)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(path), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps.group(1) if rps else "?",
        "p50": p50.group(1) if p50 else "?",
        "p99": p99.group(1) if p99 else "?",
        "non2xx": non2xx.group(1) if non2xx else "0",
    }


def start_sandbox(
    tmp: Path, only: str, ready: str, *extra: str, below: int = 0
) -> tuple[subprocess.Popen[bytes], str]:
    """``switchboard sandbox --only ONLY [extra…]`` in its own process (not the bench's GIL),
    once ``ready`` answers; its base URL. ``below``: how far the sandbox's first port lies
    below the one served (each simulator has its place after the first)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    args = ["sandbox", "--only", only, "--port", str(port - below), *extra]
    return launch(args, env, tmp, port, ready=ready)


def start_hubspot_simulator(tmp: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """The HubSpot simulator alone (``extra``: its sandbox options)."""
    return start_sandbox(tmp, "hubspot", "/_sandbox/hubspot/limits", *extra)
