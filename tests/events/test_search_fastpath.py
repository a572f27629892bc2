"""``GET /search``'s raw-ASGI fast path against the FastAPI route it stands in front of (kept as
the reference: ``create_app(fast_search=False)``), both over HTTP on the same store; and what
only the fast path does: ETags, gzip, the answer cache following the index version."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.app import create_app
from switchboard.config import Config
from switchboard.connectors.xml_feed.simulator import EventFeedSimulator
from switchboard.db import Database
from switchboard.events.index import GZIP_MIN_BYTES, index_for
from switchboard.events.versions import current_version
from switchboard.logs import configure_logging
from tests.events.conftest import SyncNow
from tests.support import API_KEY, eventually

Pair = Callable[..., Awaitable[tuple[httpx.Response, httpx.Response]]]
HEADERS_THAT_MATTER = ("content-type", "www-authenticate", "allow")


@pytest.fixture
async def reference(config: Config) -> AsyncIterator[Any]:
    app = create_app(config, runtime=False, fast_search=False)
    async with app.router.lifespan_context(app):
        yield app


async def caught_up(app: Any, db: Database) -> None:
    """Wait (bounded) until ``app``'s index has loaded the store's current version."""
    async with db.read_session() as session:
        wanted = await current_version(session)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub", headers={"X-API-Key": API_KEY}
    ) as c:

        async def loaded() -> bool:
            await c.get("/search")
            return index_for(app.state.db).version >= wanted

        await eventually(loaded, timeout=5.0)


@pytest.fixture
def pair(app: Any, reference: Any) -> Pair:
    """``await pair(url, method=..., headers=..., base_url=...)``: the same request to the fast
    path and to the reference."""

    async def run(
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, Any] | None = None,
        base_url: str = "http://hub",
        content: bytes | None = None,
    ) -> tuple[httpx.Response, httpx.Response]:
        answers = []
        for target in (app, reference):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=target), base_url=base_url
            ) as c:
                answers.append(await c.request(method, url, headers=headers or {}, content=content))
        return answers[0], answers[1]

    return run


def assert_same(fast: httpx.Response, ref: httpx.Response, what: object) -> None:
    assert fast.status_code == ref.status_code, what
    for name in HEADERS_THAT_MATTER:
        assert fast.headers.get(name) == ref.headers.get(name), (what, name)
    assert fast.json() == ref.json(), what
    assert fast.content == ref.content, what  # decoded: gzip is only the transfer's business


@pytest.fixture
async def store(
    feed: EventFeedSimulator, sync_now: SyncNow, db: Database, app: Any, reference: Any
) -> None:
    """A few hundred plans over 2021-2022, loaded by both apps."""
    feed.configure(mode="generated", base_plans=60, plans=3, zones=2, seed=23)
    _, _, error = await sync_now()
    assert error is None, error
    await caught_up(app, db)
    await caught_up(reference, db)


OFFSETS = [timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-8), timedelta(hours=14)]
MALFORMED = [
    "",
    " ",
    "yesterday",
    "2021-02-01",
    "2021-13-01T00:00:00Z",
    "2021-02-30T00:00:00Z",
    "2021-02-01T25:00:00Z",
    "2021-02-01T00:00:00+25:00",
    "99999-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2021-02-01T00:00:00ZZ",
    "T",
    "\uff12\uff10\uff12\uff11-02-01T00:00:00Z",  # full-width digits
    "2021-02-01T00:00:00Z" * 20,
    "null",
]


def instant(rng: random.Random) -> str:
    """A valid date-time in or around the store's range, in any of the forms the contract
    allows (offsets, ``z``, none, fractions)."""
    moment = datetime(2020, 12, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(800 * 86400))
    form = rng.randrange(5)
    if form == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 1:
        return moment.strftime("%Y-%m-%dt%H:%M:%Sz")
    if form == 2:
        return moment.replace(tzinfo=None).isoformat()  # naive: read as UTC
    if form == 3:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.astimezone(timezone(rng.choice(OFFSETS))).isoformat()


def random_query(rng: random.Random) -> list[tuple[str, str]]:
    kind = rng.randrange(9)
    if kind == 0:
        return []  # empty: everything
    if kind == 1:
        return [("starts_at", instant(rng))]  # open-ended
    if kind == 2:
        return [("ends_at", instant(rng))]
    if kind == 3:  # malformed, either side
        name = rng.choice(["starts_at", "ends_at"])
        return [(name, rng.choice(MALFORMED)), ("other", instant(rng))]
    if kind == 4:  # the same parameter twice: the last counts, in both
        return [("starts_at", rng.choice(MALFORMED)), ("starts_at", instant(rng))]
    if kind == 5:
        return [("starts_at", instant(rng)), ("ends_at", instant(rng)), ("page", "2")]
    first, second = instant(rng), instant(rng)
    return [("starts_at", first), ("ends_at", second)]  # ordered or inverted


@pytest.mark.usefixtures("store")
async def test_500_random_windows_agree_with_the_reference(pair: Pair) -> None:
    rng = random.Random(23)
    seen: set[int] = set()
    events = 0
    for i in range(500):
        query = random_query(rng)
        url = httpx.URL("/search", params=query)
        fast, ref = await pair(str(url), headers={"X-API-Key": API_KEY})
        assert_same(fast, ref, (i, query))
        seen.add(fast.status_code)
        if fast.status_code == 200:
            events += len(fast.json()["data"]["events"])
    assert seen == {200, 400}
    assert events > 1000  # windows that hold plans, not only empty ones


@pytest.mark.usefixtures("store")
@pytest.mark.parametrize(
    "raw",
    [
        "starts_at=2021-03-01T01:00:00+01:00",  # a raw '+' is a space in a query string
        "starts_at=2021-03-01T01:00:00%2B01:00&ends_at=2021-06-01T00:00:00Z",
        "starts_at=2021-03-01T00:00:00%00",
        "starts_at=%FF%FE",
        "starts_at",
        "=&&=x&starts_at=&ends_at",
        "ends_at=2021-06-01T00:00:00Z&ends_at=",
        "STARTS_AT=2021-03-01T00:00:00Z",
    ],
)
async def test_raw_query_strings_agree(pair: Pair, raw: str) -> None:
    fast, ref = await pair(f"/search?{raw}", headers={"X-API-Key": API_KEY})
    assert_same(fast, ref, raw)


@pytest.mark.usefixtures("store")
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"X-API-Key": ""}, 401),
        ({"X-API-Key": API_KEY + " "}, 401),
        ({"X-API-Key": "clé".encode()}, 401),
        ({"Authorization": f"Bearer {API_KEY}"}, 200),
        ({"Authorization": f"bearer   {API_KEY}  "}, 200),
        ({"X-API-Key": "", "Authorization": f"Bearer {API_KEY}"}, 200),
        ({"X-API-Key": "wrong", "Authorization": f"Bearer {API_KEY}"}, 401),
        ({"Authorization": f"Basic {API_KEY}"}, 401),
        ({"Authorization": "Bearer"}, 401),
    ],
)
async def test_api_key_answers_agree(pair: Pair, headers: dict[str, Any], status: int) -> None:
    fast, ref = await pair("/search?starts_at=2021-03-01T00:00:00Z", headers=headers)
    assert_same(fast, ref, headers)
    assert fast.status_code == status


@pytest.mark.usefixtures("store")
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
async def test_other_methods_agree(pair: Pair, method: str) -> None:
    fast, ref = await pair("/search", method=method, headers={"X-API-Key": API_KEY})
    assert fast.status_code == ref.status_code == 405
    assert fast.headers["allow"] == ref.headers["allow"]
    if method != "HEAD":
        assert_same(fast, ref, method)


@pytest.mark.usefixtures("store")
async def test_a_body_too_large_agrees(pair: Pair, config: Config) -> None:
    big = b"x" * (config.settings.max_body_bytes + 1)
    fast, ref = await pair("/search", headers={"X-API-Key": API_KEY}, content=big)
    assert fast.status_code == ref.status_code == 413
    assert fast.json() == ref.json()


async def test_the_host_check_and_request_ids_agree(config: Config, db: Database) -> None:
    """No API key: loopback Host names only, on the fast path as in the middleware."""
    settings = config.settings.model_copy(update={"api_keys": []})
    open_config = Config(settings, config.hub, None)
    apps = [create_app(open_config, runtime=False, fast_search=f) for f in (True, False)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        for host, status in (("evil.example", 400), ("localhost:8000", 200), ("[::1]", 200)):
            answers = []
            for target in apps:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=target), base_url=f"http://{host}"
                ) as c:
                    answers.append(await c.get("/search", headers={"X-Request-ID": "abc-123"}))
            fast, ref = answers
            assert_same(fast, ref, host)
            assert fast.status_code == status
            assert fast.headers["x-request-id"] == ref.headers["x-request-id"] == "abc-123"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=apps[0]), base_url="http://localhost"
        ) as c:
            insane = await c.get("/search", headers={"X-Request-ID": "a b"})
            assert insane.status_code == 200
            assert len(insane.headers["x-request-id"]) == 32  # a new one, not the client's


async def test_a_broken_store_gets_the_500_envelope_on_both(config: Config, tmp_path: Path) -> None:
    broken = (
        {"database_url": f"sqlite+aiosqlite:///{tmp_path}/empty.db"}
        if config.settings.is_sqlite
        else {"database_schema": "never_migrated_fastpath"}
    )
    unmigrated = Config(config.settings.model_copy(update=broken), config.hub, None)
    answers = []
    for fast in (True, False):
        app = create_app(unmigrated, runtime=False, fast_search=fast)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c,
        ):
            answers.append(await c.get("/search", headers={"X-API-Key": API_KEY}))
    assert_same(answers[0], answers[1], "broken store")
    assert answers[0].status_code == 500


@pytest.mark.usefixtures("store")
async def test_etag_answers_304_and_gzip_only_when_asked_and_large(
    client: httpx.AsyncClient,
) -> None:
    month = {"starts_at": "2021-03-01T00:00:00Z", "ends_at": "2021-06-01T00:00:00Z"}
    plain = await client.get("/search", params=month, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert len(plain.content) >= GZIP_MIN_BYTES
    assert plain.headers["vary"] == "Accept-Encoding"
    etag = plain.headers["etag"]

    async with client.stream(
        "GET", "/search", params=month, headers={"Accept-Encoding": "br;q=1, gzip;q=0.5"}
    ) as zipped:
        raw = b"".join([part async for part in zipped.aiter_raw()])
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == plain.content and len(raw) < len(plain.content)
    assert zipped.headers["etag"] != etag  # another representation, another validator
    refused = await client.get("/search", params=month, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers

    for validator in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await client.get(
            "/search",
            params=month,
            headers={"If-None-Match": validator, "Accept-Encoding": "identity"},
        )
        assert again.status_code == 304, validator
        assert again.content == b"" and again.headers["etag"] == etag
    gz_again = await client.get(
        "/search", params=month, headers={"If-None-Match": zipped.headers["etag"]}
    )
    assert gz_again.status_code == 304
    other = await client.get("/search", params=month, headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200

    small = await client.get(
        "/search", params={"starts_at": "2030-01-01T00:00:00Z"}, headers={"If-None-Match": "x"}
    )
    assert small.content == b'{"data":{"events":[]},"error":null}'
    assert "content-encoding" not in small.headers and "vary" not in small.headers
    assert (
        await client.get(
            "/search",
            params={"starts_at": "2030-01-01T00:00:00Z"},
            headers={"If-None-Match": small.headers["etag"]},
        )
    ).status_code == 304


async def test_an_index_update_is_visible_to_the_next_request(
    feed: EventFeedSimulator,
    sync_now: SyncNow,
    db: Database,
    app: Any,
    reference: Any,
    client: httpx.AsyncClient,
    pair: Pair,
) -> None:
    """The answer cache belongs to one index version: once the version moves, no request gets
    a body (or a 304) of the old one."""
    window = "/search?starts_at=2021-01-01T00:00:00Z&ends_at=2023-01-01T00:00:00Z"
    await sync_now()  # the samples: the OpenAPI example's plans
    await caught_up(app, db)
    before = await client.get(window)
    assert (await client.get(window)).content == before.content  # now from the cache
    index = index_for(app.state.db)
    old_version = index.version

    feed.configure(mode="generated", base_plans=20, plans=2, zones=1, seed=5)
    _, _, error = await sync_now()
    assert error is None, error

    async def moved() -> bool:
        answer = await client.get(window, headers={"If-None-Match": before.headers["etag"]})
        if index.version == old_version:
            assert answer.status_code == 304  # still the old version: the cached answer
            return False
        return True

    await eventually(moved, timeout=5.0)
    after = await client.get(window, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert len(after.json()["data"]["events"]) > len(before.json()["data"]["events"])
    await caught_up(reference, db)
    fast, ref = await pair(window, headers={"X-API-Key": API_KEY})
    assert_same(fast, ref, "after the update")


@pytest.mark.usefixtures("store")
async def test_metrics_count_requests_and_cache_hits(client: httpx.AsyncClient) -> None:
    def value(text: str, prefix: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
        )

    requests = 'switchboard_http_requests_total{method="GET",route="/search",status="200"}'
    hits = 'switchboard_search_cache_lookups_total{result="hit"}'
    first = (await client.get("/metrics")).text
    window = {"starts_at": "2022-01-01T00:00:00Z", "ends_at": "2022-01-03T00:00:00Z"}
    for _ in range(3):
        assert (await client.get("/search", params=window)).status_code == 200
    assert (await client.get("/search", params={"starts_at": "bad"})).status_code == 400
    second = (await client.get("/metrics")).text
    assert value(second, requests) - value(first, requests) == 3
    bad = 'switchboard_http_requests_total{method="GET",route="/search",status="400"}'
    assert value(second, bad) - value(first, bad) == 1
    assert value(second, hits) - value(first, hits) >= 2


async def test_the_access_log_has_the_fields_of_every_other_line(
    config: Config, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = config.settings.model_copy(update={"access_log": True, "log_format": "json"})
    configure_logging(settings)  # binds to the captured stderr
    app = create_app(Config(settings, config.hub, None), runtime=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c,
    ):
        capsys.readouterr()
        headers = {"X-API-Key": API_KEY, "X-Request-ID": "req-1"}
        assert (await c.get("/search", headers=headers)).status_code == 200
        assert (await c.get("/health", headers={"X-Request-ID": "req-2"})).status_code == 200
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    requests = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    fields = ["method", "route", "path", "status", "duration_ms", "event", "request_id", "level"]
    assert list(requests["req-1"])[:-1] == list(requests["req-2"])[:-1] == fields
    assert requests["req-1"]["route"] == "/search" and requests["req-1"]["status"] == 200
    assert requests["req-2"]["route"] == "/health"
    stamp = datetime.fromisoformat(requests["req-1"]["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_the_answer_cache_is_bounded_in_entries_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from switchboard.events import index as index_module

    rows = [json.dumps({"id": str(i), "pad": "x" * 100}).encode() for i in range(100)]
    snapshot = index_module.Snapshot(
        1, [float(i) for i in range(100)], [i + 0.5 for i in range(100)], rows
    )
    monkeypatch.setattr(index_module, "CACHE_ENTRIES", 3)
    for low in range(6):
        assert snapshot.answer(float(low), None).body == snapshot.search(float(low), None)
    assert len(snapshot._answers) == 3
    assert snapshot._cached_bytes == sum(len(a.body) for a in snapshot._answers.values())
    newest = snapshot.answer(5.0, None)
    assert newest.cached and snapshot.answer(5.0, None) is newest  # a hit: the same object

    monkeypatch.setattr(index_module, "CACHE_ENTRIES", 1024)
    monkeypatch.setattr(index_module, "CACHE_BYTES", 30_000)
    for low in range(40):
        snapshot.answer(float(low), float(low + 60))
        snapshot.gzipped(snapshot.answer(float(low), float(low + 60)))
        assert snapshot._cached_bytes <= 30_000
    assert snapshot._cached_bytes == sum(
        len(a.body) + len(a.gzip or b"") for a in snapshot._answers.values()
    )


async def test_the_index_loads_at_start_up_before_any_search(
    feed: EventFeedSimulator, sync_now: SyncNow, config: Config, db: Database
) -> None:
    await sync_now()
    app = create_app(config, runtime=False)
    async with app.router.lifespan_context(app):
        index = index_for(app.state.db)

        async def loaded() -> bool:
            return index.version >= 1 and len(index) == 4

        await eventually(loaded, timeout=5.0)  # no request has been made
