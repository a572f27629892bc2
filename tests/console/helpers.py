"""Helpers for console tests: log in through the form, read a page's CSRF token."""

from __future__ import annotations

import re

import httpx

from tests.support import API_KEY

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def login(client: httpx.AsyncClient, key: str = API_KEY) -> httpx.Response:
    return await client.post("/console/login", data={"api_key": key})


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


async def csrf_token(client: httpx.AsyncClient, path: str = "/console/connections") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page)
