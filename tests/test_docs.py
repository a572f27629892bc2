"""The API's own pages: /docs and /redoc render from assets the hub serves itself, and / answers."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

# Every URL a page loads: script and style sources, links, and the spec the page fetches.
REFERENCE = re.compile(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_loads_only_from_the_hub(app: Any, page: str) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as anon:
        r = await anon.get(page)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        refs = set(REFERENCE.findall(r.text))
        assert "/openapi.json" in refs
        assert any(ref.endswith(".js") for ref in refs), refs
        for ref in refs:
            # Nothing from another host: the page must render with the network off.
            assert ref.startswith("/") and not ref.startswith("//"), ref
            asset = await anon.get(ref)
            assert asset.status_code == 200, ref
            assert asset.content, ref


async def test_root_points_the_way(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as anon:
        r = await anon.get("/")
        assert r.status_code == 200
        body = r.json()
        assert body["docs"] == "/docs" and body["console"] == "/console"
        assert (await anon.get(body["health"])).json() == {"status": "ok"}
        browser = await anon.get("/", headers={"Accept": "text/html,*/*"})
        assert browser.status_code == 303
        assert browser.headers["location"] == "/console"
