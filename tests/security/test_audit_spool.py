"""Read events: on local disk before the read is answered, chained once, even across a kill -9."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.audit.service import record_audit, record_audits, verify_audit_chain
from backend.audit.spool import AuditSpool, _event
from backend.db.models import AuditEvent
from backend.db.session import create_engine, create_sessionmaker, transaction
from backend.errors import ServiceUnavailableError
from tests.security.conftest import client_for, finished_analysis, fresh_peer, register_and_login
from tests.security.test_hot_reads import audited_reads

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def _rows(factory: Any, action: str) -> list[AuditEvent]:
    async with factory() as session:
        return list(
            (
                await session.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            ).all()
        )


async def _verified(database_url: str) -> None:
    report = await anyio.to_thread.run_sync(verify_audit_chain, database_url)
    assert report["ok"] is True, report


@asynccontextmanager
async def _chain_locked(factory: Any) -> AsyncIterator[None]:
    """Hold the chain's append lock (SQLite's write lock, PostgreSQL's advisory lock)."""
    async with factory() as session:
        await record_audit(session, actor_id=None, action="test.lock_holder")
        try:
            yield
        finally:
            await session.rollback()


async def test_spooled_reads_are_chained_in_order_with_their_time(
    factory: Any, database_url: str, tmp_path: Path
) -> None:
    spool = AuditSpool(tmp_path, factory)
    await spool.start()
    try:
        action = f"test.spool.{uuid.uuid4().hex[:8]}"
        await asyncio.gather(
            *(spool.append(actor_id="reader", action=action, resource_id=str(i)) for i in range(40))
        )
        await spool.drained()
        rows = await _rows(factory, action)
        assert sorted(int(r.resource_id or -1) for r in rows) == list(range(40))
        assert len({r.event_key for r in rows}) == 40 and all(r.event_key for r in rows)
        await _verified(database_url)
    finally:
        await spool.stop()
    assert list(tmp_path.iterdir()) == []  # everything chained: the file is gone


async def test_a_read_is_answered_while_the_chain_is_locked(
    factory: Any, database_url: str, tmp_path: Path
) -> None:
    """The answer waits for the local disk only; the chain catches up when the lock is free."""
    spool = AuditSpool(tmp_path, factory)
    await spool.start()
    action = f"test.spool.{uuid.uuid4().hex[:8]}"
    try:
        async with _chain_locked(factory):
            await asyncio.wait_for(spool.append(actor_id="reader", action=action), timeout=2)
            assert spool.path is not None
            lines = [json.loads(line) for line in spool.path.read_text().splitlines()]
            assert [line["action"] for line in lines] == [action]
            assert await _rows(factory, action) == []
        await asyncio.wait_for(spool.drained(), timeout=60)
        assert len(await _rows(factory, action)) == 1
        await _verified(database_url)
    finally:
        await spool.stop()


async def test_a_live_process_spool_is_left_to_it(
    factory: Any, database_url: str, tmp_path: Path
) -> None:
    first, second = AuditSpool(tmp_path, factory), AuditSpool(tmp_path, factory)
    action = f"test.spool.{uuid.uuid4().hex[:8]}"
    await first.start()
    try:
        async with _chain_locked(factory):
            await first.append(actor_id="a", action=action)
        await second.start()  # recovery runs here and must not take `first`'s file
        assert first.path is not None and first.path.exists()
        await first.drained()
        assert len(await _rows(factory, action)) == 1
    finally:
        await second.stop()
        await first.stop()
    await _verified(database_url)


async def test_a_spool_left_by_a_crash_is_chained_once(
    factory: Any, database_url: str, tmp_path: Path
) -> None:
    """Two events were committed just before the crash, three were not; the last line is torn."""
    action = f"test.spool.{uuid.uuid4().hex[:8]}"
    records = [
        {
            "event_key": uuid.uuid4().hex,
            "ts": f"2026-12-02T10:00:0{i}+00:00",
            "actor_id": "reader",
            "action": action,
            "resource_id": str(i),
        }
        for i in range(5)
    ]
    async with transaction(factory) as session:
        await record_audits(session, [_event(r) for r in records[:2]])
    orphan = tmp_path / "12345-dead.jsonl"
    orphan.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"event_key": "torn", "act')
    spool = AuditSpool(tmp_path, factory)
    await spool.start()
    await spool.stop()
    rows = await _rows(factory, action)
    assert [r.resource_id for r in rows] == ["0", "1", "2", "3", "4"]
    ts = rows[4].ts if rows[4].ts.tzinfo else rows[4].ts.replace(tzinfo=UTC)
    assert ts == datetime(2026, 12, 2, 10, 0, 4, tzinfo=UTC)  # when the read happened
    assert not orphan.exists()
    await _verified(database_url)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from backend.audit.spool import AuditSpool, _event
    from backend.db.session import create_engine, create_sessionmaker

    async def main(url, directory, action, n):
        spool = AuditSpool(directory, create_sessionmaker(create_engine(url)))
        await spool.start()
        await asyncio.gather(*(spool.append(action=action, resource_id=str(i)) for i in range(n)))
        print("spooled", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


async def test_reads_spooled_by_a_killed_process_are_chained_by_the_next(
    factory: Any, database_url: str, tmp_path: Path
) -> None:
    """kill -9 after the events were acknowledged but before they reached the database."""
    action = f"test.spool.{uuid.uuid4().hex[:8]}"
    async with _chain_locked(factory):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, database_url, str(tmp_path), action, "25"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(anyio.to_thread.run_sync(child.stdout.readline), 120)
            assert line.strip() == b"spooled", child.stderr.read() if child.stderr else b""
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
    assert await _rows(factory, action) == []
    survivor = AuditSpool(tmp_path, factory)
    await survivor.start()
    await survivor.stop()
    rows = await _rows(factory, action)
    assert sorted(int(r.resource_id or -1) for r in rows) == list(range(25))
    await _verified(database_url)


async def test_reads_are_refused_when_the_backlog_is_full(factory: Any, tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path, factory, max_pending=3)
    await spool.start()
    action = f"test.spool.{uuid.uuid4().hex[:8]}"
    try:
        async with _chain_locked(factory):
            for _ in range(3):
                await spool.append(action=action)
            with pytest.raises(ServiceUnavailableError):
                await spool.append(action=action)
        await asyncio.wait_for(spool.drained(), timeout=60)
        await spool.append(action=action)  # room again
        await spool.drained()
        assert len(await _rows(factory, action)) == 4
    finally:
        await spool.stop()


async def test_result_reads_are_audited_through_the_spool(app_with: Any, database_url: str) -> None:
    async with app_with(auth_required=True) as app:
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            session_id = await finished_analysis(client, alice["headers"])
            url = f"/api/v1/analyze/result/{session_id}"
            for _ in range(2):  # the second read is served from the result cache
                assert (await client.get(url, headers=alice["headers"])).status_code == 200
        # Both spooled (an event key each), the cached one too.
        count = await audited_reads(app, session_id, alice["id"], spooled=True)
        assert count == 2
    await _verified(database_url)


async def test_a_failed_disk_write_refuses_the_read_and_leaves_no_torn_line(
    factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = AuditSpool(tmp_path, factory)
    await spool.start()
    action = f"test.spool.{uuid.uuid4().hex[:8]}"
    real_write = os.write
    failed: list[int] = []

    def disk_full_once(fd: int, data: Any) -> int:
        if fd == spool._fd and not failed:  # half the group reaches the file, then ENOSPC
            failed.append(real_write(fd, bytes(data[: len(data) // 2])))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    try:
        async with _chain_locked(factory):  # keep everything in the file while we look
            await spool.append(action=action, resource_id="1")
            monkeypatch.setattr(os, "write", disk_full_once)
            with pytest.raises(ServiceUnavailableError):
                await spool.append(action=action, resource_id="2")
            monkeypatch.undo()
            await spool.append(action=action, resource_id="3")
            assert spool.path is not None
            lines = [json.loads(line) for line in spool.path.read_text().splitlines()]
            assert [line["resource_id"] for line in lines] == ["1", "3"]
        await asyncio.wait_for(spool.drained(), timeout=60)
        assert [r.resource_id for r in await _rows(factory, action)] == ["1", "3"]
    finally:
        await spool.stop()


async def test_reads_faster_than_the_chain_wait_for_it_instead_of_being_refused(
    factory: Any, tmp_path: Path
) -> None:
    spool = AuditSpool(tmp_path, factory, high_water=5, max_pending=100)
    await spool.start()
    action = f"test.spool.{uuid.uuid4().hex[:8]}"
    try:
        async with _chain_locked(factory):  # the chain is slow: nothing is appended meanwhile
            for _ in range(5):
                await asyncio.wait_for(spool.append(action=action), timeout=5)
            held = asyncio.create_task(spool.append(action=action))
            await asyncio.sleep(0.5)
            assert not held.done(), "a read above the high-water mark did not wait"
        # The chain moves again: the held read is answered, not refused, and nothing is lost.
        await asyncio.wait_for(held, timeout=30)
        await asyncio.wait_for(spool.drained(), timeout=60)
        assert len(await _rows(factory, action)) == 6
    finally:
        await spool.stop()
