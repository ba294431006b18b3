"""Shared fixtures: settings on a temporary data dir, a real database built by Alembic, the app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from backend.accounts.auth_cache import AuthCache
from backend.analysis.result_cache import ResultCache
from backend.analysis.runtime import AnalysisRuntime
from backend.audit.service import configure_chain_key
from backend.audit.spool import AuditSpool
from backend.config import Settings
from backend.db.migrate import upgrade_database
from backend.db.session import Database, create_engine
from backend.main import create_app

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MEDSIGHT_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = SHARED_DATA / "cxr-dev" / "fixtures"
PG_URL = os.environ.get("MEDSIGHT_TEST_DATABASE_URL")
TEST_AUDIT_KEY = "test-audit-chain-key-" + "k" * 32


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def fixture_images() -> list[Path]:
    return sorted(shared_data("cxr-dev", "fixtures").glob("*.png"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite file by default; MEDSIGHT_TEST_DATABASE_URL (PostgreSQL in CI) when set."""
    # Every writer of the audit chain in this run (apps, spools, the CLI) keys it the same way,
    # whichever test happens to write its first event.
    configure_chain_key(TEST_AUDIT_KEY)
    if PG_URL:
        asyncio.run(_reset_postgres(PG_URL))
        upgrade_database(PG_URL)
        yield PG_URL
        return
    path = tmp_path_factory.mktemp("db") / "test.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade_database(url)
    yield url


async def _reset_postgres(url: str) -> None:
    """Start from an empty schema so the migrations alone build it."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def make_settings(tmp: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": tmp,
        "database_url": database_url,
        "log_json": True,
        "log_level": "WARNING",
        "preload_models": False,
        "corpus_autobuild": False,
        "worker_concurrency": 2,
        # One key for every app of the run: they all append to the same test database's chain.
        "audit_hmac_key": TEST_AUDIT_KEY,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class AppParts:
    """The parts of a running app that tests reach into, by name (the app holds them by type)."""

    def __init__(self, app: FastAPI) -> None:
        self.state = app.state.medsight

    @property
    def settings(self) -> Settings:
        return self.state.get(Settings)

    @property
    def database(self) -> Database:
        return self.state.get(Database)

    @property
    def sessionmaker(self) -> Any:
        return self.database.sessionmaker

    @property
    def engine(self) -> Any:
        return self.database.engine

    @property
    def runtime(self) -> AnalysisRuntime:
        return self.state.get(AnalysisRuntime)

    @property
    def storage(self) -> Any:
        return self.runtime.storage

    @property
    def queue(self) -> Any:
        return self.runtime.queue

    @property
    def jobs(self) -> Any:
        return self.runtime.jobs

    @property
    def pipeline(self) -> Any:
        return self.runtime.pipeline

    @property
    def registry(self) -> Any:
        return self.runtime.registry

    @property
    def results(self) -> ResultCache:
        return self.state.get(ResultCache)

    @property
    def audit(self) -> AuditSpool:
        return self.state.get(AuditSpool)

    @property
    def auth_cache(self) -> AuthCache:
        return self.state.get(AuthCache)


def parts(app: FastAPI) -> AppParts:
    return AppParts(app)
