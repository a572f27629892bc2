"""Start real ``switchboard`` processes (sandbox, API, worker) for acceptance tests.

The commands are the ones ``deploy/docker-compose.yml`` runs; only addresses and ports differ.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx

from tests.support import API_KEY, Process, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """Processes of one test, stopped (and their logs kept) at teardown."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.processes: list[Process] = []

    def start(self, name: str, *args: str, **env: str) -> Process:
        proc = Process(list(args), {**self.env, **env}, self.cwd, self.cwd / f"{name}.log")
        self.processes.append(proc)
        return proc

    def sandbox(self, *args: str) -> tuple[Process, dict[str, str]]:
        """``switchboard sandbox --port 0``: returns the process and ``{name: base_url}`` from
        the ``<name>: <url>`` lines it prints."""
        proc = self.start("sandbox", "sandbox", "--port", "0", *args)
        urls: dict[str, str] = {}

        def printed() -> bool:
            assert proc.proc.poll() is None, proc.output()
            for line in proc.output().splitlines():
                name, sep, url = line.partition(": ")
                if sep and url.startswith("http://"):
                    urls[name] = url.strip()
            return "todo" in urls or (bool(urls) and "simulators running" in proc.output())

        wait_until(printed, timeout=30, interval=0.05)
        return proc, urls

    def api(self, name: str, port: int, *args: str, **env: str) -> tuple[Process, str]:
        proc = self.start(name, "serve", "--port", str(port), *args, **env)
        return proc, f"http://127.0.0.1:{port}"

    def worker(self, name: str, *args: str, **env: str) -> Process:
        return self.start(name, "worker", *args, **env)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def wait_healthy(proc: Process, base_url: str, timeout: float = 30) -> None:
    def healthy() -> bool:
        assert proc.proc.poll() is None, proc.output()
        try:
            return httpx.get(base_url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, timeout=timeout, interval=0.05)


def wait_logged(proc: Process, event: str, timeout: float = 30) -> None:
    def logged() -> bool:
        assert proc.proc.poll() is None, proc.output()
        return any(e.get("event") == event for e in log_events(proc))

    wait_until(logged, timeout=timeout, interval=0.05)


def log_events(proc: Process) -> list[dict[str, Any]]:
    """The JSON log lines of a process (other output skipped)."""
    events = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by SIGKILL
                continue
    return events


def client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": API_KEY}, timeout=30)
