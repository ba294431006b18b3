"""The audit trail: hash-chained, appended under a lock, and any edit or removal is found."""

from __future__ import annotations

import asyncio
import json

import anyio
from fastapi import FastAPI
from sqlalchemy import delete, insert, select, update

from backend.audit.service import record_audit, verify_audit_chain
from backend.db.models import AuditEvent
from backend.db.session import transaction
from tests.conftest import parts
from tests.security.conftest import PASSWORD, client_for, fresh_peer, register_and_login


async def verify(database_url: str) -> dict[str, object]:
    return await anyio.to_thread.run_sync(verify_audit_chain, database_url)


async def test_sign_ins_are_audited_and_the_chain_verifies(app: FastAPI, database_url: str) -> None:
    peer = fresh_peer()
    async with client_for(app, peer) as client:
        user = await register_and_login(client)
        await client.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": "nope" * 3}
        )
    async with parts(app).sessionmaker() as session:
        rows = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.client_ip == peer).order_by(AuditEvent.id)
            )
        ).all()
    assert [r.action for r in rows] == ["auth.register", "auth.login", "auth.login_failed"]
    assert all(r.actor_id == user["id"] for r in rows)
    assert PASSWORD not in json.dumps([r.details for r in rows])
    report = await verify(database_url)
    assert report["ok"] is True and int(report["checked"]) >= 3  # type: ignore[call-overload]


async def test_concurrent_appends_keep_one_chain(app: FastAPI, database_url: str) -> None:
    factory = parts(app).sessionmaker

    async def append(i: int) -> None:
        async with transaction(factory) as session:
            await record_audit(session, actor_id=None, action="test.concurrent", details={"i": i})
            await asyncio.sleep(0.01)  # hold the transaction open while others queue up

    await asyncio.gather(*(append(i) for i in range(12)))
    report = await verify(database_url)
    assert report["ok"] is True, report


async def test_edited_and_removed_rows_are_detected(app: FastAPI, database_url: str) -> None:
    factory = parts(app).sessionmaker
    async with transaction(factory) as session:
        for i in range(3):
            await record_audit(session, actor_id="tamper", action="test.tamper", details={"i": i})
    async with factory() as session:
        rows = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.actor_id == "tamper").order_by(AuditEvent.id)
            )
        ).all()
    middle = rows[1]
    original = {c.name: getattr(middle, c.name) for c in AuditEvent.__table__.columns}
    try:
        # Edited content (even with the stored hash left alone) is found at that row.
        async with transaction(factory) as session:
            await session.execute(
                update(AuditEvent).where(AuditEvent.id == middle.id).values(details={"i": 99})
            )
        report = await verify(database_url)
        assert report["ok"] is False and report["broken_at"] == middle.id
        assert report["kind"] == "content"
        # A removed row breaks the link of the row after it.
        async with transaction(factory) as session:
            await session.execute(delete(AuditEvent).where(AuditEvent.id == middle.id))
        report = await verify(database_url)
        assert report["ok"] is False and report["broken_at"] == rows[2].id
        assert report["kind"] == "link"
    finally:
        async with transaction(factory) as session:
            await session.execute(delete(AuditEvent).where(AuditEvent.id == middle.id))
            await session.execute(insert(AuditEvent).values(**original))
    assert (await verify(database_url))["ok"] is True


async def test_a_submission_and_its_audit_event_commit_together(
    app: FastAPI, database_url: str
) -> None:
    from tests.conftest import fixture_images, parts
    from tests.security.conftest import upload

    async with client_for(app, fresh_peer()) as client:
        user = await register_and_login(client)
        accepted = (await upload(client, user["headers"], fixture_images()[0])).json()
    async with parts(app).sessionmaker() as session:
        rows = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "analysis.submitted",
                    AuditEvent.resource_id == accepted["session_id"],
                )
            )
        ).all()
    assert len(rows) == 1
    assert rows[0].actor_id == user["id"] and rows[0].details == {"task_id": accepted["task_id"]}
    report = await verify(database_url)
    assert report["ok"] is True, report
