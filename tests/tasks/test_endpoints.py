from __future__ import annotations

from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig.model_validate(
        {"connections": {"todo": {"kind": "todo_webhooks"}, "todo2": {"kind": "todo_webhooks"}}}
    )


async def send(
    client: httpx.AsyncClient, kind: str, task: str, user: str, path: str = "todo", **md: Any
) -> None:
    body = {
        "event": kind,
        "timestamp": "2025-04-01T10:00:00Z",
        "metadata": {
            "userId": user,
            "id": task,
            "content": f"task {task}",
            "isCompleted": False,
            **md,
        },
    }
    r = await client.post(f"/webhooks/{path}", json=body)
    assert r.status_code == 202, r.text


async def test_filters_and_cursor_pagination(client: httpx.AsyncClient) -> None:
    for i in range(7):
        await send(client, "created", str(i), user="a" if i % 2 else "b")
    await send(client, "updated", "1", user="a", isCompleted=True)
    await send(client, "deleted", "3", user="a")

    r = await client.get("/tasks", params={"userId": "a"})
    assert [t["id"] for t in r.json()["items"]] == ["1", "3", "5"]
    states = {t["id"]: t["state"] for t in r.json()["items"]}
    assert states == {"1": "completed", "3": "deleted", "5": "open"}
    for state, ids in (("open", ["5"]), ("completed", ["1"]), ("deleted", ["3"])):
        r = await client.get("/tasks", params={"userId": "a", "state": state})
        assert [t["id"] for t in r.json()["items"]] == ids

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/tasks", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [str(i) for i in range(7)]


async def test_get_task_errors(client: httpx.AsyncClient) -> None:
    assert (await client.get("/tasks/404")).json() == {"detail": "Task not found"}
    await send(client, "created", "same", user="u", path="todo")
    await send(client, "created", "same", user="v", path="todo2")
    assert (await client.get("/tasks/same")).status_code == 409
    r = await client.get("/tasks/same", params={"connection": "todo2"})
    assert r.json()["userId"] == "v"
    assert (await client.get("/tasks", params={"state": "weird"})).status_code == 422
    assert (await client.get("/tasks", params={"cursor": "abc"})).status_code == 422
    assert (await client.get("/tasks", headers={"X-API-Key": "bad"})).status_code == 401
