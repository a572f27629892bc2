from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.config import Settings
from tests.http.fakes import Outbounds
from tests.support import Backend, make_settings


@pytest.fixture
async def outbounds(settings: Settings) -> AsyncIterator[Outbounds]:
    """Outbound objects on the parametrised database (SQLite and PostgreSQL)."""
    made = Outbounds(settings)
    yield made
    await made.aclose()


@pytest.fixture
async def local(tmp_path: Any) -> AsyncIterator[Outbounds]:
    """Outbound objects without a database (per-process budget): for behaviour that never
    touches the database, run once instead of once per backend."""
    made = Outbounds(
        make_settings(Backend(f"sqlite+aiosqlite:///{tmp_path}/unused.db", None), tmp_path)
    )
    yield made
    await made.aclose()
