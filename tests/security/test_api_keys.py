"""API keys: scoped, shown once, stored hashed with a public prefix, revocable."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI
from sqlalchemy import select

from backend.db.models import ApiKey
from tests.conftest import fixture_images, parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for, fresh_peer, register_and_login, upload


async def test_api_key_lifecycle_and_scopes(quiet_app: FastAPI) -> None:
    async with client_for(quiet_app, fresh_peer()) as client:
        user = await register_and_login(client)
        r = await client.post(
            "/api/v1/users/me/api-keys",
            headers=user["headers"],
            json={"name": "lab uploader", "scopes": ["analyze:write"]},
        )
        assert r.status_code == 201, r.text
        created = r.json()
        key = created["key"]
        assert key.startswith(f"msk_{created['prefix']}_")

        # Stored as a hash only; listing shows the prefix, never the key.
        async with parts(quiet_app).sessionmaker() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.id == created["id"]))
        assert row is not None and row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        listed = await client.get("/api/v1/users/me/api-keys", headers=user["headers"])
        assert key not in listed.text and created["prefix"] in listed.text

        as_key = {"X-API-Key": key}
        r = await upload(client, as_key, fixture_images()[0])
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        # analyze:write does not include analyze:read.
        r = await client.get(f"/api/v1/analyze/status/{task_id}", headers=as_key)
        assert assert_problem(r, 403)["code"] == "insufficient_scope"
        # The owner sees the analysis made with their key.
        r = await client.get(f"/api/v1/analyze/status/{task_id}", headers=user["headers"])
        assert r.status_code == 200
        # A key cannot manage keys or delete the account.
        r = await client.post(
            "/api/v1/users/me/api-keys", headers=as_key, json={"scopes": ["analyze:read"]}
        )
        assert_problem(r, 403)
        assert_problem(await client.delete("/api/v1/users/me", headers=as_key), 403)

        r = await client.delete(
            f"/api/v1/users/me/api-keys/{created['id']}", headers=user["headers"]
        )
        assert r.status_code == 200 and r.json()["revoked_at"]
        r = await upload(client, as_key, fixture_images()[0])
        assert assert_problem(r, 401)["code"] == "invalid_api_key"


async def test_forged_and_foreign_keys(quiet_app: FastAPI) -> None:
    async with client_for(quiet_app, fresh_peer()) as client:
        alice = await register_and_login(client)
        bob = await register_and_login(client)
        r = await client.post(
            "/api/v1/users/me/api-keys", headers=alice["headers"], json={"scopes": ["analyze:read"]}
        )
        key, key_id = r.json()["key"], r.json()["id"]
        prefix = r.json()["prefix"]
        for forged in (
            f"msk_{prefix}_guess",
            "msk_",
            "garbage",
            key[:-1] + ("A" if key[-1] != "A" else "B"),
        ):
            r = await client.get("/api/v1/users/me/sessions", headers={"X-API-Key": forged})
            assert_problem(r, 401)
        assert (
            await client.get("/api/v1/users/me/sessions", headers={"X-API-Key": key})
        ).status_code == 200
        # Bob cannot revoke Alice's key.
        r = await client.delete(f"/api/v1/users/me/api-keys/{key_id}", headers=bob["headers"])
        assert_problem(r, 404)
        r = await client.post(
            "/api/v1/users/me/api-keys", headers=alice["headers"], json={"scopes": ["root"]}
        )
        assert_problem(r, 422)
