"""Durability: kill -9 the server mid-run; after a restart nothing accepted or answered is lost."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from backend.audit.service import record_audit, verify_chain
from backend.db.models import AuditEvent
from backend.db.session import create_engine, create_sessionmaker
from tests.conftest import PG_URL, TEST_AUDIT_KEY, fixture_images
from tests.e2e.server import Server, free_port, make_env

pytestmark = pytest.mark.slow


def test_kill_9_mid_run_loses_nothing(tmp_path: Path) -> None:
    env = make_env(tmp_path, PG_URL, WORKER_CONCURRENCY="1", VISION_BATCH_MAX="1")
    port = free_port()
    server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=tmp_path, env=env)
    server.start()
    images = fixture_images()
    accepted = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(20):
                image = images[i % len(images)]
                response = client.post(
                    "/api/v1/analyze",
                    files={"image": (image.name, image.read_bytes())},
                    data={"symptoms": "productive cough and fever"},
                )
                assert response.status_code == 202, response.text
                accepted.append(response.json())
            # Kill while the queue is being worked: at least one done or running, some waiting.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                states = [
                    client.get(f"/api/v1/analyze/status/{a['task_id']}").json()["status"]
                    for a in accepted[:3]
                ]
                if any(s != "queued" for s in states):
                    break
                time.sleep(0.02)
            identity = client.cookies["medsight_anon"]  # whose analyses these are
        server.kill()
    finally:
        server.kill()

    server.start()  # same data dir and database: recovery runs at start
    try:
        owner = {"X-Anonymous-Id": identity}
        with httpx.Client(base_url=server.url, timeout=30, headers=owner) as client:
            deadline = time.monotonic() + 180
            final: dict[str, dict] = {}
            while time.monotonic() < deadline and len(final) < len(accepted):
                for a in accepted:
                    if a["task_id"] in final:
                        continue
                    status = client.get(f"/api/v1/analyze/status/{a['task_id']}").json()
                    if status["status"] in {"complete", "partial", "failed"}:
                        final[a["task_id"]] = status
                time.sleep(0.2)
            assert len(final) == 20, f"stuck: {len(accepted) - len(final)} not finished"
            for a in accepted:
                status = final[a["task_id"]]
                if status["status"] == "failed":
                    assert status["error"], status
                result = client.get(f"/api/v1/analyze/result/{a['session_id']}").json()
                assert result["overall_status"] in {"COMPLETE", "PARTIAL", "FAILED"}
            # Uploads of finished jobs are intact on disk.
            uploads = list((tmp_path / "uploads").rglob("*.png"))
            assert len(uploads) == 20
            known = {hashlib.sha256(p.read_bytes()).hexdigest() for p in images}
            assert all(hashlib.sha256(p.read_bytes()).hexdigest() in known for p in uploads)
    finally:
        server.stop()


async def test_reads_answered_before_a_kill_9_stay_audited(tmp_path: Path) -> None:
    """Result reads answered while the chain was busy, then kill -9: the restart chains them."""
    env = make_env(tmp_path, PG_URL)
    database_url = env["DATABASE_URL"]
    port = free_port()
    server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=tmp_path, env=env)
    server.start()
    engine = create_engine(database_url)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            image = fixture_images()[0]
            accepted = (
                await client.post(
                    "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}
                )
            ).json()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = await client.get(f"/api/v1/analyze/status/{accepted['task_id']}")
                if status.json()["status"] in {"complete", "partial", "failed"}:
                    break
                await asyncio.sleep(0.1)
            # Hold the chain's append lock, so the server can spool but not chain.
            async with create_sessionmaker(engine)() as holder:
                await record_audit(holder, actor_id=None, action="test.lock_holder")
                for _ in range(5):
                    r = await client.get(f"/api/v1/analyze/result/{accepted['session_id']}")
                    assert r.status_code == 200
                server.kill()
                await holder.rollback()
        async with create_sessionmaker(engine)() as session:
            reads = select(func.count()).where(
                AuditEvent.action == "result.read", AuditEvent.resource_id == accepted["session_id"]
            )
            assert await session.scalar(reads) == 0  # nothing reached the chain before the kill
            server.start()  # recovery chains the dead process's spool at start-up
            await session.rollback()
            assert await session.scalar(reads) == 5
            assert (await verify_chain(session, key=TEST_AUDIT_KEY.encode()))["ok"] is True
    finally:
        server.stop()
        await engine.dispose()
