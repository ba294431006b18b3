"""Expired auth state is purged; live state is kept."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from backend.accounts.maintenance import purge_expired_auth_state
from backend.db.base import new_id, utcnow
from backend.db.models import LoginThrottle, OAuthState, RefreshToken
from backend.db.session import transaction
from tests.conftest import parts
from tests.security.conftest import client_for, fresh_peer, register_and_login


async def test_purge_drops_expired_and_keeps_live_state(app: FastAPI) -> None:
    factory = parts(app).sessionmaker
    async with client_for(app, fresh_peer()) as client:
        user = await register_and_login(client)
    now = utcnow()
    old, live, fam = new_id(), new_id(), new_id()
    async with transaction(factory) as session:
        session.add(
            RefreshToken(jti=old, user_id=user["id"], family_id=fam, expires_at=now - timedelta(1))
        )
        session.add(
            RefreshToken(jti=live, user_id=user["id"], family_id=fam, expires_at=now + timedelta(1))
        )
        session.add(
            OAuthState(
                state=old,
                code_verifier="v",
                nonce="n",
                redirect_uri="http://x",
                expires_at=now - timedelta(minutes=1),
            )
        )
        session.add(LoginThrottle(key=f"ip:{old}", failures=3, last_failure_at=now - timedelta(2)))
        session.add(LoginThrottle(key=f"ip:{live}", failures=3, last_failure_at=now))
    counts = await purge_expired_auth_state(factory)
    assert counts["refresh_tokens"] >= 1 and counts["oauth_states"] >= 1
    async with factory() as session:
        assert await session.get(RefreshToken, old) is None
        assert await session.get(RefreshToken, live) is not None
        assert await session.get(OAuthState, old) is None
        assert await session.get(LoginThrottle, f"ip:{old}") is None
        assert await session.get(LoginThrottle, f"ip:{live}") is not None
    # The user's real session still works.
    async with client_for(app, fresh_peer()) as client:
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
        assert r.status_code == 200


async def test_expired_analyses_are_purged_with_upload_and_cached_result(app: FastAPI) -> None:
    """Retention deletes old finished analyses, their uploads, and this process's cached JSON."""
    from backend.analysis.maintenance import purge_expired
    from backend.db.models import Analysis

    state = parts(app)
    old_at = utcnow() - timedelta(days=state.settings.retention_days + 1)
    rows = {}
    async with transaction(state.sessionmaker) as session:
        for name, created, status in (
            ("old", old_at, "complete"),
            ("recent", utcnow(), "complete"),
            ("old_queued", old_at, "queued"),  # never deleted before its job is final
        ):
            key = f"uploads/test/{new_id()}.png"
            state.storage.put(key, b"png")
            row = Analysis(
                id=new_id(),
                owner_key="anonymous",
                image_key=key,
                image_sha256="0" * 64,
                image_format="png",
                image_width=256,
                image_height=256,
                status=status,
                created_at=created,
            )
            session.add(row)
            rows[name] = row
    for row in rows.values():
        state.results.put(row.id, b"{}", owner_key="anonymous", version=(row.status, ""))
    assert await purge_expired(state.runtime, state.results) >= 1
    async with state.sessionmaker() as session:
        assert await session.get(Analysis, rows["old"].id) is None
        assert await session.get(Analysis, rows["recent"].id) is not None
        assert await session.get(Analysis, rows["old_queued"].id) is not None
    assert not state.storage.exists(rows["old"].image_key)
    assert state.storage.exists(rows["recent"].image_key)
    assert state.results.fresh(rows["old"].id, "anonymous") is None
    assert state.results.fresh(rows["recent"].id, "anonymous") is not None
