"""Fixtures for the security suite: the app with auth installed, users, tokens, a fake Google."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher, Type
from fastapi import FastAPI

from backend.accounts import passwords
from backend.config import Settings
from backend.main import create_app
from tests.conftest import fixture_images, make_settings, parts
from tests.fakes.oidc import CLIENT_ID, CLIENT_SECRET, FakeOIDCProvider


@pytest.fixture(autouse=True)
def fast_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    # Still argon2id, with parameters a shared 2-core CI box can afford hundreds of times.
    monkeypatch.setattr(
        passwords,
        "hasher",
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID),
    )


def build_app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = build_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def client_for(application: FastAPI, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=application, raise_app_exceptions=False, client=(peer, 1234)
    )
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


# A random start per process: with REDIS_URL, counters outlive a test run (for an hour).
_peers = itertools.count(secrets.randbelow(60_000))


def fresh_peer() -> str:
    """A client address of its own, so lockout counters never leak between tests."""
    n = next(_peers)
    return f"10.{77 + n // 62_500}.{n // 250 % 250}.{n % 250 + 1}"


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, fresh_peer()) as c:
        yield c


_counter = iter(range(1, 10**9))


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}{next(_counter)}-{id(object())}@example.org"


PASSWORD = "correct horse battery staple"


async def register_and_login(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    email = email or unique_email()
    r = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "full_name": "T"}
    )
    assert r.status_code == 202, r.text
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    tokens = r.json()
    return {
        "email": email,
        "id": r.json() and (await me(client, tokens["access_token"]))["id"],
        **tokens,
        "headers": {"Authorization": f"Bearer {tokens['access_token']}"},
    }


def verification_link(application: FastAPI, email: str) -> str:
    """The path (and query) of the newest verification link mailed to `email` (log transport)."""
    from urllib.parse import urlsplit

    from backend.accounts.mailer import LogMailer, Mailer

    mailer = application.state.medsight.get(Mailer)
    assert isinstance(mailer, LogMailer)
    message = mailer.last_to(email.lower())
    assert message is not None and message.link, f"no verification link was sent to {email}"
    parts = urlsplit(message.link)
    return f"{parts.path}?{parts.query}"


async def me(client: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access_token}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def oidc() -> Iterator[FakeOIDCProvider]:
    provider = FakeOIDCProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def google_settings(tmp_path: Path, database_url: str, oidc: FakeOIDCProvider) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        google_client_id=CLIENT_ID,
        google_client_secret=CLIENT_SECRET,
        google_discovery_url=oidc.discovery_url,
        allowed_origins=["http://app.test"],
    )


@pytest.fixture
def app_with(tmp_path: Path, database_url: str) -> Any:
    """`async with app_with(**setting_overrides) as app:` a started app with those settings."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[FastAPI]:
        application = build_app(make_settings(tmp_path, database_url, **overrides))
        async with application.router.lifespan_context(application):
            yield application

    return factory


async def pause_workers(application: FastAPI) -> None:
    """Stop the in-process workers: uploads stay queued, no model runs (these tests need none)."""
    await parts(application).queue.stop()


async def cancel_leftover_jobs(application: FastAPI) -> None:
    # The test database lives for the whole run: leave no queued job for a later test's workers.
    from sqlalchemy import update

    from backend.db.models import Job
    from backend.db.session import transaction

    async with transaction(parts(application).sessionmaker) as session:
        await session.execute(update(Job).where(Job.status == "queued").values(status="cancelled"))


@pytest.fixture
async def quiet_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    await pause_workers(app)
    yield app
    await cancel_leftover_jobs(app)


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], image: Path, **form: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/analyze",
        headers=headers,
        files={"image": (image.name, image.read_bytes(), "image/png")},
        data=form,
    )


async def finished_analysis(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """Upload a fixture X-ray and wait until its analysis is final; returns its session id."""
    accepted = (await upload(client, headers, fixture_images()[0])).json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = await client.get(f"/api/v1/analyze/status/{accepted['task_id']}", headers=headers)
        if r.json()["status"] in {"complete", "partial", "failed"}:
            return str(accepted["session_id"])
        await asyncio.sleep(0.1)
    raise AssertionError("the analysis did not finish")
