"""Verified credentials are cached per process: revocations here act at once, elsewhere in a TTL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
from sqlalchemy import event, update

from backend.accounts.auth_cache import AuthCache, Identity, credentials_revoked
from backend.db.base import utcnow
from backend.db.models import ApiKey, RefreshToken
from backend.db.session import transaction
from tests.conftest import parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for, fresh_peer, register_and_login

ME = "/api/v1/users/me/sessions"  # any route that needs a signed-in owner


async def test_a_revocation_in_this_process_acts_at_once(app_with: Any) -> None:
    async with app_with(auth_required=True, auth_cache_ttl_s=60) as app:
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            assert (await client.get(ME, headers=alice["headers"])).status_code == 200  # cached
            created = await client.post(
                "/api/v1/users/me/api-keys",
                headers=alice["headers"],
                json={"scopes": ["analyze:read"]},
            )
            key = {"X-API-Key": created.json()["key"]}
            assert (await client.get(ME, headers=key)).status_code == 200  # cached too
            r = await client.delete(
                f"/api/v1/users/me/api-keys/{created.json()['id']}", headers=alice["headers"]
            )
            assert r.status_code == 200
            assert_problem(await client.get(ME, headers=key), 401)
            assert (await client.post("/api/v1/auth/logout", headers=alice["headers"])).is_success
            assert_problem(await client.get(ME, headers=alice["headers"]), 401)
            bob = await register_and_login(client)
            assert (await client.get(ME, headers=bob["headers"])).status_code == 200
            assert (await client.delete("/api/v1/users/me", headers=bob["headers"])).is_success
            assert_problem(await client.get(ME, headers=bob["headers"]), 401)


async def test_another_replicas_revocation_acts_within_the_ttl(app_with: Any) -> None:
    async with app_with(auth_required=True, auth_cache_ttl_s=0.5) as app:
        state = parts(app)
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            created = await client.post(
                "/api/v1/users/me/api-keys",
                headers=alice["headers"],
                json={"scopes": ["analyze:read"]},
            )
            key = {"X-API-Key": created.json()["key"]}
            for headers in (alice["headers"], key):
                assert (await client.get(ME, headers=headers)).status_code == 200
            # Another replica signs Alice out and revokes the key: straight in the database,
            # this process is not told.
            async with transaction(state.sessionmaker) as session:
                await session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.user_id == alice["id"])
                    .values(revoked_at=utcnow())
                )
                await session.execute(
                    update(ApiKey).where(ApiKey.user_id == alice["id"]).values(revoked_at=utcnow())
                )
            await asyncio.sleep(0.6)
            for headers in (alice["headers"], key):
                assert_problem(await client.get(ME, headers=headers), 401)


async def test_a_cached_credential_costs_no_query(app_with: Any) -> None:
    async with app_with(auth_required=True, auth_cache_ttl_s=60) as app:
        state = parts(app)
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            await client.get("/api/v1/health/ready", headers=alice["headers"])
            statements: list[str] = []

            def seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                statements.append(statement)

            event.listen(state.engine.sync_engine, "before_cursor_execute", seen)
            try:
                for _ in range(3):
                    r = await client.get("/api/v1/analyze/status/none", headers=alice["headers"])
                    assert_problem(r, 404)
            finally:
                event.remove(state.engine.sync_engine, "before_cursor_execute", seen)
            auth_reads = [s for s in statements if "refresh_tokens" in s or "FROM users" in s]
            assert statements and not auth_reads  # the status lookup ran, no credential check


async def test_a_revoking_transaction_drops_entries_again_at_commit(app_with: Any) -> None:
    """An entry re-verified while the revocation is not yet committed does not outlive it."""
    async with app_with() as app:
        cache = AuthCache(ttl_s=60)
        key = ("token", "u1", "f1")
        cache.put(key, Identity("u1"))
        async with transaction(parts(app).sessionmaker) as session:
            credentials_revoked(session)
            assert cache.get(key) is None
            cache.put(key, Identity("u1"))  # another request, reading the old state
            assert cache.get(key) is not None
        assert cache.get(key) is None


async def test_a_revocation_committed_during_verification_is_not_cached_over(
    app_with: Any,
) -> None:
    """verify() read 'not revoked'; the revocation commits before its answer is stored."""
    async with app_with() as app:
        cache = AuthCache(ttl_s=60)
        key = ("token", "u2", "f2")

        async def verify_while_revoked() -> Identity:
            async with transaction(parts(app).sessionmaker) as session:
                credentials_revoked(session)
            return Identity("u2")

        assert await cache.get_or_verify(key, verify_while_revoked) == Identity("u2")
        assert cache.get(key) is None


async def test_a_users_entry_reverified_mid_revocation_is_dropped_at_commit(app_with: Any) -> None:
    """A sign-out (or many, e.g. someone logging in and out in a loop) does not send every
    other signed-in request of the process back to the database."""
    async with app_with() as app:
        cache = AuthCache(ttl_s=60)
        alice, bob = ("token", "alice", "f"), ("token", "bob", "f")
        cache.put(alice, Identity("alice"))
        cache.put(bob, Identity("bob"))
        async with transaction(parts(app).sessionmaker) as session:
            credentials_revoked(session, "bob")
            assert cache.get(bob) is None and cache.get(alice) is not None
            cache.put(bob, Identity("bob"))  # re-verified against the uncommitted state
        assert cache.get(bob) is None  # dropped again at commit
        assert cache.get(alice) == Identity("alice")


async def test_concurrent_requests_with_one_credential_verify_it_once(app_with: Any) -> None:
    async with app_with(auth_required=True, auth_cache_ttl_s=60) as app:
        state = parts(app)
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            statements: list[str] = []

            def seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                statements.append(statement)

            state.state.get(AuthCache)._entries.clear()  # as when an entry has just expired
            event.listen(state.engine.sync_engine, "before_cursor_execute", seen)
            try:
                answers = await asyncio.gather(
                    *(client.get(ME, headers=alice["headers"]) for _ in range(20))
                )
            finally:
                event.remove(state.engine.sync_engine, "before_cursor_execute", seen)
            assert [r.status_code for r in answers] == [200] * 20
            # verify_access's family check (the route's own session reads do not ask this).
            checks = [s for s in statements if "family_id" in s and "IS NOT NULL" in s]
            assert len(checks) == 1, checks


async def test_a_concurrent_forgery_is_refused_for_every_request(app_with: Any) -> None:
    async with app_with(auth_required=True, auth_cache_ttl_s=60) as app:
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            forged = alice["access_token"][:-4] + "AAAA"
            answers = await asyncio.gather(
                *(client.get(ME, headers={"Authorization": f"Bearer {forged}"}) for _ in range(5))
            )
            for response in answers:
                assert_problem(response, 401)


async def test_one_users_revocation_leaves_other_users_cached(app_with: Any) -> None:
    async with app_with() as app:
        cache = AuthCache(ttl_s=60)
        alice, bob = ("token", "alice", "fa"), ("token", "bob", "fb")
        cache.put(alice, Identity("alice"))
        cache.put(bob, Identity("bob"))
        async with transaction(parts(app).sessionmaker) as session:
            credentials_revoked(session, "bob")  # e.g. Bob revokes one of his API keys
        assert cache.get(bob) is None
        assert cache.get(alice) == Identity("alice")
        async with transaction(parts(app).sessionmaker) as session:
            credentials_revoked(session)  # no user named: everyone's
        assert cache.get(alice) is None


async def test_a_cached_token_still_expires(app_with: Any) -> None:
    """The decoded claims are reused, never past the token's own expiry (plus decode's leeway)."""
    async with app_with(auth_required=True, auth_cache_ttl_s=60) as app:
        settings = parts(app).settings
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            me_now = await client.get(ME, headers=alice["headers"])
            assert me_now.status_code == 200
            # Already past its expiry but inside the 5 s leeway: accepted, then cached.
            claims = jwt.decode(
                alice["access_token"],
                settings.jwt_secret_key,
                algorithms=["HS256"],
                audience=settings.jwt_audience,
            )
            claims["exp"] = int(time.time()) - 3
            token = jwt.encode(claims, settings.jwt_secret_key, algorithm="HS256")
            headers = {"Authorization": f"Bearer {token}"}
            assert (await client.get(ME, headers=headers)).status_code == 200
            await asyncio.sleep(3.0)
            body = assert_problem(await client.get(ME, headers=headers), 401)
            assert body["code"] == "token_expired"
