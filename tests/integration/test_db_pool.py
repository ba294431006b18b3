"""PostgreSQL pool: idle connections are checked before use, busy ones are not re-checked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.db.session import create_engine, is_sqlite


@pytest.fixture
def pg_url(database_url: str) -> str:
    if is_sqlite(database_url):
        pytest.skip("PostgreSQL pool behaviour (CI's PostgreSQL pass runs this)")
    return database_url


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def _terminate(url: str, pid: int) -> None:
    killer = create_engine(url)
    try:
        async with killer.connect() as conn:
            await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


async def test_a_connection_killed_while_idle_is_replaced_before_use(pg_url: str) -> None:
    engine = create_engine(pg_url, ping_idle_s=0.2)
    try:
        first = await _backend_pid(engine)
        await _terminate(pg_url, first)  # e.g. a database restart while the pool was idle
        await asyncio.sleep(0.3)
        second = await _backend_pid(engine)  # pinged, found dead, replaced: no error
        assert second != first
    finally:
        await engine.dispose()


async def test_a_recently_used_connection_is_not_pinged(pg_url: str) -> None:
    engine = create_engine(pg_url, ping_idle_s=60)
    try:
        first = await _backend_pid(engine)
        await _terminate(pg_url, first)
        # Within the window the dead connection is handed out unchecked: its statement fails
        # and SQLAlchemy invalidates the pool, so the next checkout connects afresh.
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
