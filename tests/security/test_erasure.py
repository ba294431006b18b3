"""Deleting an account erases its uploads, results, chats, keys and tokens; others keep theirs."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import func, select

from backend.db.models import Analysis, ApiKey, ChatMessage, RefreshToken
from tests.conftest import fixture_images, parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import PASSWORD, client_for, fresh_peer, register_and_login, upload
from tests.security.test_ownership import seed_chat


async def test_delete_me_erases_everything_of_mine_only(quiet_app: FastAPI) -> None:
    state = parts(quiet_app)
    async with client_for(quiet_app, fresh_peer()) as client:
        alice = await register_and_login(client)
        bob = await register_and_login(client)
        images = fixture_images()
        mine = [(await upload(client, alice["headers"], img)).json() for img in images[:2]]
        theirs = (await upload(client, bob["headers"], images[2])).json()
        await seed_chat(quiet_app, alice["id"], mine[0]["session_id"])
        await client.post(
            "/api/v1/users/me/api-keys", headers=alice["headers"], json={"scopes": ["chat"]}
        )
        async with state.sessionmaker() as session:
            keys = (
                await session.scalars(
                    select(Analysis.image_key).where(
                        Analysis.id.in_([m["session_id"] for m in mine])
                    )
                )
            ).all()
        assert len(keys) == 2 and all(state.storage.exists(k) for k in keys)

        r = await client.delete("/api/v1/users/me", headers=alice["headers"])
        assert r.status_code == 204, r.text

        assert not any(state.storage.exists(k) for k in keys)
        async with state.sessionmaker() as session:
            for model, column in (
                (Analysis, Analysis.owner_key),
                (ChatMessage, ChatMessage.owner_key),
                (ApiKey, ApiKey.user_id),
                (RefreshToken, RefreshToken.user_id),
            ):
                count = await session.scalar(
                    select(func.count()).select_from(model).where(column == alice["id"])
                )
                assert count == 0, model.__name__
        assert_problem(await client.get("/api/v1/auth/me", headers=alice["headers"]), 401)
        r = await client.post(
            "/api/v1/auth/login", json={"email": alice["email"], "password": PASSWORD}
        )
        assert_problem(r, 401)
        # Bob's analysis is untouched.
        r = await client.get(f"/api/v1/analyze/status/{theirs['task_id']}", headers=bob["headers"])
        assert r.status_code == 200
