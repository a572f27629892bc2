"""Cost of the Host check on the request path, in process (no sockets, no database).

    .venv/bin/python -m bench.hosts [--requests 200000]

Drives the hub's request middleware around an app that answers at once, with a ``GET /search``
request's headers, and times the middleware per request: without a Host restriction (API keys
configured: the production hot path), with the loopback restriction (no API key), with an
``SWITCHBOARD_ALLOWED_HOSTS`` list, and, for comparison, Starlette's ``TrustedHostMiddleware``
as a second layer. Best of five rounds (the machine is shared); the check alone is timed with
``timeit``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from typing import Any

import structlog
from starlette.middleware.trustedhost import TrustedHostMiddleware

from bench.common import append
from switchboard.config import LOOPBACK_HOSTS
from switchboard.middleware import RequestContextMiddleware, _host, _HostCheck

ALLOWED = ["hub.example.com", "*.corp.example", "localhost"]
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/search",
    "query_string": b"starts_at=2021-06-01T00:00:00Z&ends_at=2021-06-02T00:00:00Z",
    "headers": [
        (b"host", b"localhost:8000"),
        (b"user-agent", b"wrk"),
        (b"accept", b"*/*"),
        (b"x-api-key", b"bench-key-0123456789"),
        (b"connection", b"keep-alive"),
    ],
}


async def answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    return None


async def per_request_us(app: Any, requests: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(SCOPE), receive, send)
        best = min(best, (time.perf_counter() - started) / requests * 1e6)
    return best


def middleware(app: Any, hosts: Any) -> RequestContextMiddleware:
    return RequestContextMiddleware(
        app, max_body_bytes=1_048_576, access_log=False, allowed_hosts=hosts
    )


def check_us(hosts: Any) -> float:
    """The check alone, as the middleware runs it, less the cost of calling an empty function:
    best of five ``timeit`` rounds, which the load of a shared machine disturbs less than a
    whole request."""
    check = _HostCheck(hosts) if hosts is not None else None
    scope = SCOPE

    def guarded() -> object:
        if check is not None and not check.allows(_host(scope)):
            return "refused"
        return None

    def empty() -> object:
        return None

    def best(fn: Any) -> float:
        return min(timeit.Timer(fn).repeat(repeat=5, number=500_000)) / 500_000 * 1e6

    return max(0.0, best(guarded) - best(empty))


async def main(requests: int) -> list[list[str]]:
    structlog.configure(cache_logger_on_first_use=True)
    cases = [
        ("no Host restriction (API keys configured)", middleware(answer, None)),
        ("loopback names only (no API key)", middleware(answer, LOOPBACK_HOSTS)),
        (
            "SWITCHBOARD_ALLOWED_HOSTS=hub.example.com,*.corp.example,localhost",
            middleware(answer, ALLOWED),
        ),
        (
            "no restriction + Starlette TrustedHostMiddleware (loopback names)",
            middleware(
                TrustedHostMiddleware(answer, allowed_hosts=["localhost", "127.0.0.1", "[::1]"]),
                None,
            ),
        ),
    ]
    checks = [check_us(None), check_us(LOOPBACK_HOSTS), check_us(ALLOWED), None]
    results = [(name, await per_request_us(app, requests)) for name, app in cases]
    base = results[0][1]
    return [
        [name, f"{us:.2f}", f"{us - base:+.2f}", "—" if check is None else f"{check:.2f}"]
        for (name, us), check in zip(results, checks, strict=True)
    ]


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    rows = asyncio.run(main(args.requests))
    print(
        append(
            "Host check cost (bench/hosts.py), in process",
            f"python -m bench.hosts --requests {args.requests}",
            [
                "middleware configuration",
                "µs per request (middleware)",
                "vs. no restriction",
                "µs in the check itself",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    run()
