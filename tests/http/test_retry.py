"""The retry loop against a real local server: what is retried, how long it waits, and where
it stops waiting (request path vs job)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.errors import TerminalError, TransientError
from switchboard.http import ProviderRejected, ProviderUnavailable, RetryPolicy
from switchboard.http.testing import FakeClock
from switchboard.jobs import RetryLater
from tests.http.fakes import POLICY, Outbounds, Recorder

Serve = Callable[[Any], str]


def scripted(answers: list[Response], recorder: Recorder, *, delay: float = 0.0) -> Starlette:
    """Answers each request with the next response of the script (the last one repeats)."""

    async def endpoint(request: Request) -> Response:
        await recorder.record(request)
        if delay:
            await asyncio.sleep(delay)
        index = min(len(recorder.seen), len(answers)) - 1
        return answers[index]

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PATCH"])])


def conn(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "crm": {
            "kind": "hubspot",
            "base_url": base_url,
            "auth": {"type": "token", "token": "pat-na1-secret"},
            **extra,
        }
    }


def rate_limited(retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return JSONResponse(
        {"status": "error", "message": "You have reached your ten_secondly_rolling limit."},
        status_code=429,
        headers=headers,
    )


OK = JSONResponse({"results": []})


async def test_retry_after_seconds_is_honoured_exactly(
    asgi_server: Serve, local: Outbounds
) -> None:
    recorder = Recorder()
    unavailable = Response("down", status_code=503, headers={"Retry-After": "2"})
    url = asgi_server(scripted([rate_limited("7"), unavailable, OK], recorder))
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    r = await crm.request("GET", "/crm/v3/objects/contacts")

    assert r.json() == {"results": []}
    assert clock.sleeps == [7.0, 2.0]
    assert len(recorder.seen) == 3
    assert recorder.seen[0].headers["authorization"] == "Bearer pat-na1-secret"


async def test_retry_after_http_date_is_honoured_exactly(
    asgi_server: Serve, local: Outbounds
) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    when = formatdate(clock.time() + 5, usegmt=True)
    recorder = Recorder()
    url = asgi_server(scripted([rate_limited(when), OK], recorder))
    crm = local.make(conn(url), None, clock=clock).client("crm")

    await crm.request("GET", "/x")

    assert clock.sleeps == [5.0]
    assert len(recorder.seen) == 2


@pytest.mark.parametrize("status", [400, 404, 409, 403])
async def test_other_4xx_are_terminal_and_never_retried(
    asgi_server: Serve, local: Outbounds, status: int
) -> None:
    body = {"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"}
    recorder = Recorder()
    url = asgi_server(scripted([JSONResponse(body, status_code=status), OK], recorder))
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    with pytest.raises(ProviderRejected) as caught:
        await crm.request("GET", "/crm/v3/objects/contacts/1")

    assert isinstance(caught.value, TerminalError)
    assert caught.value.provider_status == status
    assert caught.value.provider_message == "Object not found."
    assert caught.value.provider_body == body
    assert len(recorder.seen) == 1
    assert clock.sleeps == []


async def test_accepted_status_is_returned_not_raised(asgi_server: Serve, local: Outbounds) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([JSONResponse({"message": "nope"}, status_code=404)], recorder))
    crm = local.make(conn(url), None, clock=FakeClock()).client("crm")

    r = await crm.request("GET", "/crm/v3/objects/contacts/1", accept={404})

    assert r.status_code == 404
    assert len(recorder.seen) == 1


async def test_5xx_is_retried_with_jittered_backoff_up_to_the_attempt_cap(
    asgi_server: Serve, local: Outbounds
) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([JSONResponse({"message": "boom"}, status_code=502)], recorder))
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    with pytest.raises(ProviderUnavailable) as caught:
        await crm.request("GET", "/x")

    assert isinstance(caught.value, TransientError)
    assert caught.value.provider_status == 502
    assert caught.value.provider_message == "boom"
    assert len(recorder.seen) == POLICY.max_attempts
    assert len(clock.sleeps) == POLICY.max_attempts - 1
    for n, wait in enumerate(clock.sleeps, start=1):  # full jitter under the exponential ceiling
        assert 0 <= wait <= POLICY.backoff_base * 2 ** (n - 1)


async def test_connection_errors_are_retried_up_to_the_cap(local: Outbounds) -> None:
    clock = FakeClock()
    crm = local.make(conn("http://127.0.0.1:9"), None, clock=clock).client("crm")  # closed port

    with pytest.raises(ProviderUnavailable, match="ConnectError"):
        await crm.request("POST", "/x", json={})  # never sent: safe to repeat even for a POST

    assert len(clock.sleeps) == POLICY.max_attempts - 1


async def test_read_timeout_is_retried_only_when_idempotent(
    asgi_server: Serve, local: Outbounds
) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([OK], recorder, delay=0.4))
    policy = RetryPolicy(max_attempts=2, backoff_base=0.1, request_max_wait=10)
    crm = local.make(conn(url, read_timeout="150ms"), None, clock=FakeClock(), policy=policy)
    client = crm.client("crm")

    with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
        await client.request("GET", "/read")
    assert len(recorder.paths("/read")) == 2

    # A POST may have been applied before the answer was lost: never repeated by default ...
    with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
        await client.request("POST", "/create", json={})
    assert len(recorder.paths("/create")) == 1
    # ... unless the caller says it is safe (e.g. HubSpot search).
    with pytest.raises(ProviderUnavailable):
        await client.request("POST", "/search", json={}, idempotent=True)
    assert len(recorder.paths("/search")) == 2


async def test_request_path_never_waits_past_its_bound(
    asgi_server: Serve, local: Outbounds
) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([rate_limited("120"), OK], recorder))
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    with pytest.raises(ProviderUnavailable) as caught:
        await crm.request("GET", "/x")

    assert caught.value.retry_after == 120
    assert caught.value.status_code == 503
    assert caught.value.headers == {"Retry-After": "120"}  # the API answers 503 + Retry-After
    assert caught.value.provider_status == 429
    assert clock.sleeps == []
    assert len(recorder.seen) == 1


async def test_request_path_bound_counts_all_waits(asgi_server: Serve, local: Outbounds) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([rate_limited("6"), rate_limited("6"), OK], recorder))
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    with pytest.raises(ProviderUnavailable) as caught:
        await crm.request("GET", "/x")  # 6 s fits the 10 s bound, 6 + 6 does not

    assert clock.sleeps == [6.0]
    assert caught.value.retry_after == 6


async def test_job_mode_turns_a_long_wait_into_retry_later(
    asgi_server: Serve, local: Outbounds
) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([rate_limited("5"), rate_limited("600"), OK], recorder))
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    with pytest.raises(RetryLater) as caught:
        await crm.request("GET", "/x", mode="job")

    assert caught.value.seconds == 600
    assert clock.sleeps == [5.0]  # a short wait is waited out in the job
    assert len(recorder.seen) == 2


async def test_job_mode_waits_out_what_the_request_path_would_not(
    asgi_server: Serve, local: Outbounds
) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([rate_limited("30"), OK], recorder))
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    r = await crm.request("GET", "/x", mode="job")

    assert r.status_code == 200
    assert clock.sleeps == [30.0]


async def test_stream_retries_then_hands_over_an_unread_body(
    asgi_server: Serve, local: Outbounds
) -> None:
    recorder = Recorder()
    big = b"<planList>" + b"x" * (3 * 1024 * 1024) + b"</planList>"
    unavailable = Response("down", status_code=503, headers={"Retry-After": "1"})
    url = asgi_server(
        scripted([unavailable, Response(big, media_type="application/xml")], recorder)
    )
    clock = FakeClock()
    crm = local.make(conn(url), None, clock=clock).client("crm")

    async with crm.stream("GET", "/api/events", mode="job") as response:
        assert not response.is_stream_consumed
        chunks = [chunk async for chunk in response.aiter_bytes(65536)]

    assert clock.sleeps == [1.0] and len(recorder.seen) == 2
    assert b"".join(chunks) == big and len(chunks) > 1


async def test_stream_errors_are_mapped_like_requests(asgi_server: Serve, local: Outbounds) -> None:
    recorder = Recorder()
    url = asgi_server(scripted([JSONResponse({"message": "no"}, status_code=400)], recorder))
    crm = local.make(conn(url), None, clock=FakeClock()).client("crm")
    with pytest.raises(ProviderRejected) as caught:
        async with crm.stream("GET", "/api/events"):
            pass
    assert caught.value.provider_status == 400


async def test_passthrough_returns_the_providers_final_answer_instead_of_raising(
    asgi_server: Serve, local: Outbounds
) -> None:
    """The proxy's mode: a 4xx comes back as is; 429/5xx are retried for an idempotent call and
    the last answer comes back when the attempts are used up; a POST gets its 429 back."""
    not_found = JSONResponse({"message": "no such thing"}, status_code=404)
    missing, flaky, busy = Recorder(), Recorder(), Recorder()
    clock = FakeClock()
    make = local.make
    found = make(conn(asgi_server(scripted([not_found], missing))), None, clock=clock)
    retried = make(conn(asgi_server(scripted([rate_limited("1")], flaky))), None, clock=clock)
    posted = make(conn(asgi_server(scripted([rate_limited("1"), OK], busy))), None, clock=clock)

    r404 = await found.client("crm").request("GET", "/x", passthrough=True)
    r429 = await retried.client("crm").request("GET", "/x", passthrough=True)
    post = await posted.client("crm").request("POST", "/x", passthrough=True)

    assert r404.status_code == 404 and r404.json() == {"message": "no such thing"}
    assert len(missing.seen) == 1
    assert r429.status_code == 429 and len(flaky.seen) == POLICY.max_attempts
    assert clock.sleeps == [1.0] * (POLICY.max_attempts - 1)
    assert post.status_code == 429 and len(busy.seen) == 1
    retried_post = await posted.client("crm").request(
        "POST", "/x", passthrough=True, idempotent=True
    )
    assert retried_post.status_code == 200 and len(busy.seen) == 2
