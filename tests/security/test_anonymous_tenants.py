"""Anonymous mode (development): each anonymous client is its own tenant (issue 16, item 5).

Two clients with their own cookie jars stand for two people on the same development server.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.conftest import fixture_images
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for, fresh_peer

MRN = "MRN 4471-2290"


async def _upload(
    client: httpx.AsyncClient, image_index: int, key: str, **headers: str
) -> httpx.Response:
    image = fixture_images()[image_index]
    return await client.post(
        "/api/v1/analyze",
        headers={"Idempotency-Key": key, **headers},
        files={"image": (image.name, image.read_bytes(), "image/png")},
        data={"symptoms": "cough"},
    )


async def test_another_anonymous_client_cannot_replay_or_read(quiet_app: FastAPI) -> None:
    peer = fresh_peer()  # same address: a shared NAT or one developer machine
    async with client_for(quiet_app, peer) as alice, client_for(quiet_app, peer) as mallory:
        first = await _upload(alice, 0, "retry-123")
        assert first.status_code == 202, first.text
        assert first.headers.get("x-anonymous-id") and "medsight_anon" in alice.cookies
        mine = first.json()
        # Mallory guesses the key: she gets her own new analysis, not Alice's ids.
        theirs = await _upload(mallory, 1, "retry-123")
        assert theirs.status_code == 202, theirs.text
        assert theirs.json()["task_id"] != mine["task_id"]
        assert theirs.json()["session_id"] != mine["session_id"]
        assert "idempotent-replay" not in theirs.headers
        # ... and cannot read Alice's analysis by its ids.
        for path in (
            f"/api/v1/analyze/status/{mine['task_id']}",
            f"/api/v1/analyze/result/{mine['session_id']}",
        ):
            assert_problem(await mallory.get(path), 404)
            assert (await alice.get(path)).status_code != 404
        # Alice's own retry is still a replay.
        again = await _upload(alice, 0, "retry-123")
        assert again.json()["task_id"] == mine["task_id"]
        assert again.headers.get("idempotent-replay") == "true"


async def test_a_reused_key_with_another_payload_is_refused(quiet_app: FastAPI) -> None:
    async with client_for(quiet_app, fresh_peer()) as client:
        assert (await _upload(client, 0, "k-1")).status_code == 202
        other = await _upload(client, 1, "k-1")
        assert assert_problem(other, 422)["code"] == "idempotency_key_reused"


async def test_conversations_belong_to_their_anonymous_client(quiet_app: FastAPI) -> None:
    peer = fresh_peer()
    async with client_for(quiet_app, peer) as alice, client_for(quiet_app, peer) as mallory:
        r = await alice.post(
            "/api/v1/chat",
            json={"message": f"Patient {MRN} has a cough", "conversation_id": "ward7-bed3"},
        )
        assert r.status_code == 200, r.text
        mine = await alice.get("/api/v1/chat/ward7-bed3/messages")
        assert mine.status_code == 200 and MRN in mine.text, mine.text
        stolen = await mallory.get("/api/v1/chat/ward7-bed3/messages")
        assert_problem(stolen, 404)
        assert MRN not in stolen.text


async def test_scripts_use_the_identity_as_a_header(quiet_app: FastAPI) -> None:
    async with client_for(quiet_app, fresh_peer()) as setup:
        r = await setup.post("/api/v1/auth/anonymous")
        assert r.status_code == 200, r.text
        header = {r.json()["header"]: r.json()["anonymous_id"]}
    # Each call a fresh client without cookies, as curl is.
    async with client_for(quiet_app, fresh_peer()) as curl:
        accepted = await _upload(curl, 0, "script-1", **header)
        assert accepted.status_code == 202, accepted.text
    async with client_for(quiet_app, fresh_peer()) as curl:
        r = await curl.get(f"/api/v1/analyze/status/{accepted.json()['task_id']}", headers=header)
        assert r.status_code == 200, r.text
        # Without it, the same script is somebody else.
        r = await curl.get(f"/api/v1/analyze/status/{accepted.json()['task_id']}")
        assert_problem(r, 404)
    async with client_for(quiet_app, fresh_peer()) as forger:
        forged = {"X-Anonymous-Id": header["X-Anonymous-Id"][:-3] + "abc"}
        r = await forger.get(f"/api/v1/analyze/status/{accepted.json()['task_id']}", headers=forged)
        assert assert_problem(r, 401)["code"] == "invalid_anonymous_id"
