"""Async engine and session factory, built in the app's lifespan (never at import)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def normalise_database_url(url: str) -> str:
    """Map plain driver names to their async drivers (postgresql:// → asyncpg)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        url = "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(normalise_database_url(url)).get_backend_name() == "sqlite"


# A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
PING_IDLE_S = 2.0


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 in a 0700 folder (SQLite gives its journal and WAL the
    file's own mode), so patient data never takes a permissive umask."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def create_engine(url: str, *, echo: bool = False, ping_idle_s: float = PING_IDLE_S) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, a busy timeout and foreign keys."""
    url = normalise_database_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    sqlite = is_sqlite(url)
    if sqlite:
        database = make_url(url).database
        if database and database != ":memory:":
            _private_sqlite_file(Path(database))
        kwargs["connect_args"] = {"timeout": 30}
        # Each aiosqlite connection is a thread plus PRAGMAs to open; a pool large enough for
        # the busy case keeps them (the default 5 + 10 overflow closed and reopened connections
        # hundreds of times a second under load).
        kwargs.update(pool_size=30, max_overflow=20)
    else:
        kwargs.update(pool_size=10, max_overflow=20)
    engine = create_async_engine(url, **kwargs)
    if not sqlite:
        _ping_when_idle(engine, ping_idle_s)
        return engine

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Check a pooled connection before use only when it has been idle for idle_s.

    SQLAlchemy's `pool_pre_ping` checks every checkout, and with asyncpg a check is three round
    trips (BEGIN, an empty query, ROLLBACK): a status read became four round trips instead of
    one, and under load each round trip waits for the database process to be scheduled. A
    connection handed back moments ago was working moments ago, so (like HikariCP's
    aliveBypassWindowMs) only connections idle longer than idle_s are pinged. A failed ping
    makes the pool discard the connection and take another; a connection that died within the
    window fails its statement, and SQLAlchemy then invalidates the whole pool.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < idle_s:
            return  # new, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failed ping: take another connection
            raise DisconnectionError("pooled connection failed its ping") from exc


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits on success and rolls back on error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@dataclass(frozen=True)
class Database:
    """The engine and its session factory: one per process, built at start-up."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(cls, url: str, *, echo: bool = False) -> Database:
        engine = create_engine(url, echo=echo)
        return cls(engine=engine, sessionmaker=create_sessionmaker(engine))

    async def aclose(self) -> None:
        await self.engine.dispose()
