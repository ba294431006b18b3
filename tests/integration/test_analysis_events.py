"""Following an analysis (GET /analyze/events/{task_id}) and deleting a finished one.

Events: `status` first, one `stage` event per stage start and end, `final` last; a late follower
gets the run's stages replayed; an analysis run by another process is followed through its row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from backend.db.base import utcnow
from backend.db.models import Analysis, AuditEvent, ChatMessage, Job
from backend.db.session import transaction
from tests.conftest import fixture_images, parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import (
    cancel_leftover_jobs,
    client_for,
    fresh_peer,
    pause_workers,
    register_and_login,
    upload,
)

STAGES = ["input", "vision", "memory", "nlp", "fusion", "report"]


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        name = next((line[6:].strip() for line in lines if line.startswith("event:")), "")
        data = "".join(line[5:].strip() for line in lines if line.startswith("data:"))
        if name and data:
            events.append((name, json.loads(data)))
    return events


async def follow(client: httpx.AsyncClient, task_id: str, **params: Any) -> list[Any]:
    response = await client.get(f"/api/v1/analyze/events/{task_id}", params=params, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


@pytest.fixture
async def quiet(app: FastAPI) -> AsyncIterator[FastAPI]:
    """No worker claims uploads: they stay queued unless a test moves them."""
    await pause_workers(app)
    yield app
    await cancel_leftover_jobs(app)


async def test_a_followed_analysis_streams_each_stage_then_its_final_state(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    accepted = (await upload(client, {}, fixture_images()[1], symptoms="dry cough")).json()
    events = await follow(client, accepted["task_id"])
    names = [name for name, _ in events]
    assert names[0] == "status" and names[-1] == "final"
    first = events[0][1]
    assert first["session_id"] == accepted["session_id"] and first["stage_events"] is True
    stages = [data for name, data in events if name == "stage"]
    assert [(s["stage"], s["phase"]) for s in stages] == [
        (stage, phase) for stage in STAGES for phase in ("start", "end")
    ]
    assert all(s["outcome"] in {"ok", "skipped", "withheld", "failed"} for s in stages[1::2])
    progress = [s["progress"] for s in stages]
    assert progress == sorted(progress) and 0 <= progress[0] < progress[-1] < 1
    final = events[-1][1]
    assert final["status"] in {"complete", "partial"} and final["overall_status"]
    result = await client.get(final["result_url"])
    assert result.status_code == 200 and result.json()["session_id"] == accepted["session_id"]
    assert result.json()["stages"] == {s["stage"]: s["outcome"] for s in stages[1::2]}

    # A follower who comes after the end gets the same stages, replayed, and the final state.
    # (A live follower may also have seen a mid-run `status` event, sent when a poll between
    # stage events noticed queued -> processing; that one depends on timing, not on the replay.)
    again = await follow(client, accepted["task_id"])
    assert [n for n, _ in again] == ["status"] + [n for n in names[1:] if n != "status"]
    assert again[0][1]["status"] == final["status"]
    assert [d for n, d in again if n == "stage"] == stages
    assert parts(app).pipeline.feed.subscribers() == 0


async def test_wait_0_answers_where_the_analysis_is_and_ends(quiet: FastAPI) -> None:
    async with client_for(quiet, fresh_peer()) as client:
        accepted = (await upload(client, {}, fixture_images()[0])).json()
        events = await follow(client, accepted["task_id"], wait=0)
        assert [name for name, _ in events] == ["status", "timeout"]
        assert events[0][1]["status"] == "queued" and events[0][1]["queue_position"] == 0
        assert events[1][1]["status"] == "queued"

        # Someone else's task, or none: 404 before any stream starts.
        bob = await register_and_login(client)
        response = await client.get(
            f"/api/v1/analyze/events/{accepted['task_id']}", headers=bob["headers"]
        )
        assert_problem(response, 404)
        assert_problem(await client.get("/api/v1/analyze/events/no-such-task"), 404)
        path = f"/api/v1/analyze/events/{accepted['task_id']}"
        assert_problem(await client.get(path, params={"wait": 601}), 422)


async def test_an_analysis_run_elsewhere_is_followed_through_its_row(quiet: FastAPI) -> None:
    """No stage events reach this process; status changes and the end still do, from the row."""
    async with client_for(quiet, fresh_peer()) as client:
        accepted = (await upload(client, {}, fixture_images()[0])).json()
        following = asyncio.create_task(follow(client, accepted["task_id"], wait=30))
        sessionmaker = parts(quiet).sessionmaker
        await asyncio.sleep(0.3)
        async with transaction(sessionmaker) as session:  # another worker claims it ...
            await session.execute(
                update(Analysis)
                .where(Analysis.id == accepted["session_id"])
                .values(status="running", stage="vision", progress=0.3)
            )
        await asyncio.sleep(1.2)
        async with transaction(sessionmaker) as session:  # ... and fails it
            await session.execute(
                update(Analysis)
                .where(Analysis.id == accepted["session_id"])
                .values(
                    status="failed",
                    overall_status="FAILED",
                    stage="done",
                    progress=1.0,
                    error="worker lost",
                    completed_at=utcnow(),
                )
            )
            await session.execute(
                update(Job).where(Job.id == accepted["task_id"]).values(status="failed")
            )
        events = await asyncio.wait_for(following, 10)
    assert [name for name, _ in events] == ["status", "status", "final"]
    assert [events[0][1]["status"], events[1][1]["status"]] == ["queued", "running"]
    assert events[1][1]["stage"] == "vision"
    assert events[2][1]["status"] == "failed" and events[2][1]["error"] == "worker lost"


async def test_deleting_a_finished_analysis_removes_its_upload_result_and_chats(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    accepted = (await upload(client, {}, fixture_images()[2])).json()
    await follow(client, accepted["task_id"])
    session_id = accepted["session_id"]
    p = parts(app)
    async with transaction(p.sessionmaker) as session:
        key = await session.scalar(select(Analysis.image_key).where(Analysis.id == session_id))
        row = await session.scalar(select(Analysis).where(Analysis.id == session_id))
        assert row is not None
        session.add(
            ChatMessage(
                conversation_id=session_id,
                analysis_id=session_id,
                owner_key=row.owner_key,
                role="user",
                content="is it bad?",
            )
        )
    assert key and p.storage.exists(key)
    assert (await client.get(f"/api/v1/analyze/result/{session_id}")).status_code == 200

    response = await client.delete(f"/api/v1/analyze/result/{session_id}")
    assert response.status_code == 204, response.text
    assert not p.storage.exists(key)
    assert_problem(await client.get(f"/api/v1/analyze/result/{session_id}"), 404)
    assert_problem(await client.get(f"/api/v1/chat/{session_id}/messages"), 404)
    async with p.sessionmaker() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model).where(column == value))
            for model, column, value in (
                (Analysis, Analysis.id, session_id),
                (Job, Job.analysis_id, session_id),
                (ChatMessage, ChatMessage.analysis_id, session_id),
            )
        ]
        deleted = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "analysis.deleted", AuditEvent.resource_id == session_id)
        )
    assert counts == [0, 0, 0] and deleted == 1
    assert_problem(await client.delete(f"/api/v1/analyze/result/{session_id}"), 404)


async def test_an_unfinished_analysis_cannot_be_deleted(quiet: FastAPI) -> None:
    async with client_for(quiet, fresh_peer()) as client:
        accepted = (await upload(client, {}, fixture_images()[0])).json()
        response = await client.delete(f"/api/v1/analyze/result/{accepted['session_id']}")
        assert assert_problem(response, 409)["code"] == "analysis_not_finished"
        status = await client.get(f"/api/v1/analyze/status/{accepted['task_id']}")
        assert status.json()["status"] == "queued"
