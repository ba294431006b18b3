"""Append-only, hash-chained audit events, and a verifier that finds edited or removed rows."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.base import utcnow
from backend.db.models import AuditEvent
from backend.db.session import create_engine, create_sessionmaker

if TYPE_CHECKING:
    from backend.audit.spool import AuditSpool

GENESIS_HASH = "0" * 64
# Any fixed 64-bit number: the transaction-scoped PostgreSQL advisory lock serialising appends.
_AUDIT_LOCK_ID = 7_201_126_011


def _ts_text(ts: datetime) -> str:
    # SQLite returns naive datetimes; both sides of the hash must see the same UTC text.
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    prev_hash: str,
    ts: datetime,
    actor_id: str | None,
    action: str,
    resource_type: str | None,
    resource_id: str | None,
    client_ip: str | None,
    details: dict[str, Any],
) -> str:
    """SHA-256 over the previous hash and a canonical JSON form of the event."""
    body = json.dumps(
        {
            "prev": prev_hash,
            "ts": _ts_text(ts),
            "actor": actor_id,
            "action": action,
            "rtype": resource_type,
            "rid": resource_id,
            "ip": client_ip,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()


async def record_audit(
    session: AsyncSession,
    *,
    actor_id: str | None,
    action: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
    client_ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event to the chain inside the caller's transaction (flushed, not committed)."""
    await record_audits(
        session,
        [
            {
                "actor_id": actor_id,
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "client_ip": client_ip,
                "details": details,
            }
        ],
    )


async def record_audits(session: AsyncSession, events: Sequence[Mapping[str, Any]]) -> None:
    """Append events, in order, inside the caller's transaction (flushed, not committed).

    Each mapping holds record_audit's keyword arguments, and may carry the event's own `ts` (when
    it happened, if earlier than now) and a unique `event_key` (audit_spool.py). The chain's
    head is read once and the events link to each other in memory: a batch costs one statement
    that takes the lock and reads the head (two on PostgreSQL) and one multi-row INSERT.
    """
    if not events:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite has one writer at a time, but the driver opens the write transaction lazily.
        # This UPDATE takes the write lock and returns the chain's head in one statement (an
        # empty table matches no row, yet the statement still takes the lock).
        prev = await session.scalar(
            text(
                "UPDATE audit_events SET id = id "
                "WHERE id = (SELECT max(id) FROM audit_events) RETURNING hash"
            )
        )
    else:
        # Serialise appends until this transaction ends, so two writers never share a parent.
        if dialect == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _AUDIT_LOCK_ID})
        prev = await session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    prev_hash = prev or GENESIS_HASH
    rows: list[dict[str, Any]] = []
    for event in events:
        # Round-trip through JSON so the stored value and the hashed value are identical.
        clean: dict[str, Any] = json.loads(json.dumps(event.get("details") or {}, default=str))
        row: dict[str, Any] = {
            "ts": event.get("ts") or utcnow(),
            "actor_id": event.get("actor_id"),
            "action": str(event["action"]),
            "resource_type": event.get("resource_type"),
            "resource_id": event.get("resource_id"),
            "client_ip": event.get("client_ip"),
        }
        row["hash"] = event_hash(prev_hash=prev_hash, details=clean, **row)
        row.update(details=clean, prev_hash=prev_hash, event_key=event.get("event_key"))
        rows.append(row)
        prev_hash = row["hash"]
    # One multi-row INSERT. Ordered by parameter, so generated ids follow the chain on every
    # database (verify_chain walks it by id).
    await session.execute(
        insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True), rows
    )


async def verify_chain(session: AsyncSession, *, batch: int = 1000) -> dict[str, Any]:
    """Walk the chain in id order; report the first row whose link or content does not match."""
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = -1
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            if row.prev_hash != expected_prev:
                return _broken(checked, row.id, "link", "a preceding event was removed or edited")
            recomputed = event_hash(
                prev_hash=row.prev_hash,
                ts=row.ts,
                actor_id=row.actor_id,
                action=row.action,
                resource_type=row.resource_type,
                resource_id=row.resource_id,
                client_ip=row.client_ip,
                details=row.details or {},
            )
            if recomputed != row.hash:
                return _broken(checked, row.id, "content", "this event was edited")
            expected_prev = row.hash
            checked += 1
            last_id = row.id
    return {"ok": True, "checked": checked, "head": expected_prev}


def _broken(checked: int, row_id: int, kind: str, reason: str) -> dict[str, Any]:
    return {"ok": False, "checked": checked, "broken_at": row_id, "kind": kind, "reason": reason}


def verify_audit_chain(database_url: str) -> dict[str, Any]:
    """Blocking entry point for `medsight audit verify`: `{"ok": bool, "checked": n, ...}`."""

    async def run() -> dict[str, Any]:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await verify_chain(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def audit_read(spool: AuditSpool | None, session: AsyncSession, **event: Any) -> None:
    """Record a read event: through the process's spool when there is one, else inline.

    With the spool, the caller's transaction is ended first (a read has nothing pending), so
    its pooled connection is free while the event is written to disk.
    """
    if spool is not None:
        if session.in_transaction():
            await session.commit()
        await spool.append(**event)
    else:
        await record_audit(session, **event)
