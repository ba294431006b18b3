"""Ownership matrix: every route that takes a task or session id, tried by other callers → 404.

Data-driven over the app's OpenAPI paths, so routes added later are covered automatically.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from tests.conftest import fixture_images, parts
from tests.security.conftest import client_for, fresh_peer, register_and_login, upload

ID_PARAMS = {"task_id", "session_id", "conversation_id"}
SECRET_TEXT = "zebra-canary-71"  # appears only in user A's data


def id_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops = []
    for path, item in spec["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        if not names & ID_PARAMS:
            continue
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                ops.append((method.upper(), path, op))
    return ops


def all_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (m.upper(), path, op)
        for path, item in spec["paths"].items()
        for m, op in item.items()
        if m in {"get", "post", "put", "patch", "delete"}
    ]


async def seed_chat(application: FastAPI, owner_id: str, session_id: str) -> str:
    """A saved chat turn of the owner's about this analysis (the conversation id is returned)."""
    from backend.db.models import ChatMessage
    from backend.db.session import transaction

    async with transaction(parts(application).sessionmaker) as session:
        session.add(
            ChatMessage(
                conversation_id=session_id,
                analysis_id=session_id,
                owner_id=owner_id,
                owner_key=owner_id,
                role="user",
                content=f"is this bad? {SECRET_TEXT}",
            )
        )
    return session_id


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(
        r"{(\w+)}", lambda m: ids.get(m.group(1), "00000000-0000-0000-0000-000000000000"), path
    )


def minimal_request(op: dict[str, Any]) -> dict[str, Any]:
    """A body the route will accept, so ownership (not validation) decides the answer."""
    body = op.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        return {"json": {"question": "What does this show?", "message": "hello"}}
    if "multipart/form-data" in body:
        return {"data": {"question": "hello"}}
    if any(p.get("name") == "wait" and p.get("in") == "query" for p in op.get("parameters", [])):
        # Long polls and event streams answer at once (the workers are paused here).
        return {"params": {"wait": 0}}
    return {}


async def test_no_route_leaks_another_users_analysis(quiet_app: FastAPI) -> None:
    async with client_for(quiet_app, fresh_peer()) as client:
        alice = await register_and_login(client)
        bob = await register_and_login(client)
        r = await upload(
            client,
            alice["headers"],
            fixture_images()[0],
            symptoms=f"cough {SECRET_TEXT}",
            patient_ref=SECRET_TEXT,
        )
        assert r.status_code == 202, r.text
        session_id = r.json()["session_id"]
        ids = {"task_id": r.json()["task_id"], "session_id": session_id}
        ids["conversation_id"] = await seed_chat(quiet_app, alice["id"], session_id)
        r = await client.post(
            "/api/v1/users/me/api-keys",
            headers=bob["headers"],
            json={"name": "all", "scopes": ["analyze:write", "analyze:read", "chat", "reports"]},
        )
        bob_key = {"X-API-Key": r.json()["key"]}

        spec = (await client.get("/openapi.json")).json()
        operations = id_operations(spec)
        assert {
            ("GET", "/api/v1/analyze/status/{task_id}"),
            ("DELETE", "/api/v1/analyze/{task_id}"),
        } <= {(m, p) for m, p, _ in operations}
        intruders = {"bob (token)": bob["headers"], "bob (API key)": bob_key, "anonymous": {}}
        leaks = []
        for method, path, op in operations:
            url = fill(path, ids)
            extra = minimal_request(op)
            for who, headers in intruders.items():
                r = await client.request(method, url, headers=headers, **extra)
                if r.status_code != 404 or SECRET_TEXT in r.text:
                    leaks.append(f"{who}: {method} {path} -> {r.status_code} {r.text[:200]}")
        # Ids in a body count too: asking the chat about Alice's analysis.
        if any(p == "/api/v1/chat" for _, p, _ in all_operations(spec)):
            for who, headers in intruders.items():
                r = await client.post(
                    "/api/v1/chat",
                    headers=headers,
                    json={"message": "what is it?", "session_id": session_id},
                )
                if r.status_code != 404 or SECRET_TEXT in r.text:
                    leaks.append(f"{who}: POST /api/v1/chat -> {r.status_code} {r.text[:200]}")
        assert not leaks, "\n".join(leaks)

        # The control: the owner reaches every one of them (so the 404s above mean something).
        deletes = []
        for method, path, op in operations:
            if method == "DELETE":
                deletes.append((method, path, op))
                continue
            r = await client.request(
                method, fill(path, ids), headers=alice["headers"], **minimal_request(op)
            )
            assert r.status_code != 404, f"owner got 404 on {method} {path}: {r.text}"
        for method, path, _op in deletes:
            r = await client.request(method, fill(path, ids), headers=alice["headers"])
            assert r.status_code != 404, f"owner got 404 on {method} {path}: {r.text}"


async def test_history_lists_only_your_own_analyses(quiet_app: FastAPI) -> None:
    async with client_for(quiet_app, fresh_peer()) as client:
        alice = await register_and_login(client)
        bob = await register_and_login(client)
        images = fixture_images()
        mine = []
        for image in images[:2]:
            r = await upload(client, alice["headers"], image, patient_ref=SECRET_TEXT)
            mine.append(r.json()["session_id"])
        r = await client.get("/api/v1/users/me/sessions", headers=alice["headers"])
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == 2 and {i["session_id"] for i in page["items"]} == set(mine)
        assert page["trend"]["direction"] == "insufficient_data"
        r = await client.get("/api/v1/users/me/sessions?limit=1&offset=1", headers=alice["headers"])
        assert len(r.json()["items"]) == 1 and r.json()["total"] == 2
        r = await client.get("/api/v1/users/me/sessions", headers=bob["headers"])
        assert r.json()["total"] == 0 and SECRET_TEXT not in r.text
