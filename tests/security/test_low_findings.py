"""The audit's "Low" findings (issue 16), each tried against the real app."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from datetime import timedelta
from pathlib import Path

from backend.accounts.tokens import encode_token
from backend.config import Settings
from backend.db.base import utcnow
from tests.conftest import fixture_images, make_settings
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import (
    build_app,
    client_for,
    fresh_peer,
    pause_workers,
    register_and_login,
    upload,
)


async def test_an_api_key_cannot_read_the_account(app_with) -> None:
    async with app_with() as app, client_for(app, fresh_peer()) as client:
        user = await register_and_login(client)
        r = await client.post(
            "/api/v1/users/me/api-keys",
            headers=user["headers"],
            json={"name": "ci", "scopes": ["analyze:read"]},
        )
        key = {"X-API-Key": r.json()["key"]}
        assert (
            assert_problem(await client.get("/api/v1/auth/me", headers=key), 403)["code"]
            == "api_key_refused"
        )


async def test_deleting_the_account_needs_a_recent_sign_in(app_with) -> None:
    async with app_with() as app, client_for(app, fresh_peer()) as client:
        user = await register_and_login(client)
        settings = app.state.medsight.get(Settings)
        # A stolen, still valid access token of a sign-in from an hour ago (e.g. kept alive by
        # refreshing) must not be enough to erase the account.
        old = encode_token(
            settings,
            subject=user["id"],
            kind="access",
            family_id="old-family",
            ttl=timedelta(minutes=15),
            auth_time=utcnow() - timedelta(hours=1),
        )
        r = await client.delete(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {old.token}"}
        )
        assert assert_problem(r, 401)["code"] == "reauthentication_required"
        # A refresh keeps the sign-in's age: still the fresh sign-in here, so it works.
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
        fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert (await client.delete("/api/v1/users/me", headers=fresh)).status_code == 204


async def test_a_refresh_family_has_an_absolute_lifetime(app_with) -> None:
    async with (
        app_with(refresh_family_max_days=2 / 86_400) as app,  # two seconds
        client_for(app, fresh_peer()) as client,
    ):
        user = await register_and_login(client)
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
        assert r.status_code == 200, r.text
        await asyncio.sleep(2.5)
        r = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]}
        )
        assert assert_problem(r, 401)["code"] == "session_expired"


async def test_readiness_does_not_echo_storage_errors(app_with, tmp_path: Path) -> None:
    storage = tmp_path / "secret-mount-point"
    async with app_with(storage_dir=storage) as app, client_for(app, fresh_peer()) as client:
        shutil.rmtree(storage)
        r = await client.get("/api/v1/health/ready")
        assert r.status_code == 503
        assert "secret-mount-point" not in r.text and str(tmp_path) not in r.text
        assert r.json()["checks"]["storage"]["ok"] is False


async def test_database_and_uploads_are_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'private.db'}"
        settings = make_settings(tmp_path, url, storage_dir=tmp_path / "uploads")
        application = build_app(settings)
        async with application.router.lifespan_context(application):
            await pause_workers(application)
            async with client_for(application, fresh_peer()) as client:
                r = await upload(client, {}, fixture_images()[0])
                assert r.status_code == 202, r.text
    finally:
        os.umask(previous)
    db = tmp_path / "db" / "private.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    files = [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    folders = [p for p in (tmp_path / "uploads").rglob("*") if p.is_dir()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in folders)


async def test_probing_other_ids_leaves_an_audit_trail(app_with) -> None:
    import asyncio
    import uuid

    from sqlalchemy import select

    from backend.audit.spool import AuditSpool
    from backend.db.models import AuditEvent
    from tests.conftest import parts

    peer = fresh_peer()
    probed = [str(uuid.uuid4()) for _ in range(3)]
    async with app_with() as app, client_for(app, peer) as prober:
        user = await register_and_login(prober)
        for target in probed:
            for path in (f"/api/v1/analyze/result/{target}", f"/api/v1/report/{target}"):
                assert_problem(await prober.get(path, headers=user["headers"]), 404)
        await asyncio.wait_for(app.state.medsight.get(AuditSpool).drained(), 30)
        async with parts(app).sessionmaker() as session:
            rows = (
                await session.scalars(
                    select(AuditEvent).where(
                        AuditEvent.client_ip == peer, AuditEvent.action.like("%.not_found")
                    )
                )
            ).all()
    assert sorted((r.action, r.resource_id) for r in rows) == sorted(
        [("result.read.not_found", t) for t in probed]
        + [("report.read.not_found", t) for t in probed]
    )
    assert all(r.actor_id == user["id"] for r in rows)
