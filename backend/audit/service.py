"""Append-only audit events in a keyed hash chain, and a verifier that says what it proves.

Each event's `hash` is HMAC-SHA256, keyed with AUDIT_HMAC_KEY, over the previous event's hash
and the event itself. The key lives outside the database (the environment; in development the
secrets file), so someone who can write to the database but does not hold the key cannot
edit or delete a row and re-hash the chain after it: `medsight audit verify` finds the first
row that does not match. Rows written before the chain was keyed (plain SHA-256) are accepted
only as an unbroken prefix and are reported separately (`unkeyed_prefix`): anyone with
database access could have rewritten those.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.base import utcnow
from backend.db.models import AuditEvent
from backend.db.session import create_engine, create_sessionmaker
from backend.errors import NotFoundError

if TYPE_CHECKING:
    from backend.audit.spool import AuditSpool

GENESIS_HASH = "0" * 64
_chain_key: bytes | None = None


def configure_chain_key(key: str) -> None:
    """Set the process's AUDIT_HMAC_KEY (the app does so at start; the CLI before verifying)."""
    global _chain_key
    if not key:
        raise ValueError("AUDIT_HMAC_KEY is empty")
    _chain_key = key.encode("utf-8")


def _key() -> bytes:
    if _chain_key is None:
        from backend.config import get_settings

        configure_chain_key(get_settings().audit_hmac_key)
    assert _chain_key is not None  # noqa: S101 - set just above
    return _chain_key


# Any fixed 64-bit number: the transaction-scoped PostgreSQL advisory lock serialising appends.
_AUDIT_LOCK_ID = 7_201_126_011


def _ts_text(ts: datetime) -> str:
    # SQLite returns naive datetimes; both sides of the hash must see the same UTC text.
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(
    *,
    prev_hash: str,
    ts: datetime,
    actor_id: str | None,
    action: str,
    resource_type: str | None,
    resource_id: str | None,
    client_ip: str | None,
    details: dict[str, Any],
) -> bytes:
    return json.dumps(
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
    ).encode("ascii")


def event_hash(*, key: bytes | None = None, **event: Any) -> str:
    """HMAC-SHA256 (AUDIT_HMAC_KEY) over the previous hash and a canonical JSON of the event."""
    return hmac.new(key or _key(), _canonical(**event), "sha256").hexdigest()


def legacy_event_hash(**event: Any) -> str:
    """The unkeyed SHA-256 of chains written before the key existed (verification only)."""
    return hashlib.sha256(_canonical(**event)).hexdigest()


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
        details = event.get("details")
        clean: dict[str, Any] = json.loads(json.dumps(details, default=str)) if details else {}
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
    # One executemany of the rows in chain order, so generated ids follow the chain
    # (verify_chain walks it by id). Nothing is returned: asking for the ids in parameter order
    # made SQLite run one statement, and one round trip to its thread, per event (≈ 0.5 ms of
    # CPU each, as much as the cached read being audited).
    await session.execute(insert(AuditEvent), rows)


async def verify_chain(
    session: AsyncSession,
    *,
    batch: int = 1000,
    key: bytes | None = None,
    anchor: str | None = None,
) -> dict[str, Any]:
    """Walk the chain in id order; report the first row whose link or keyed hash is wrong.

    `anchor`: a head hash recorded outside the database earlier (`medsight audit verify`
    prints `head`); the chain must still contain it, which catches the removal of the newest
    rows (invisible otherwise: the shortened chain is still a valid chain).
    """
    key = key or _key()
    expected_prev = GENESIS_HASH
    checked = keyed = legacy = 0
    anchor_seen = anchor is None
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
            fields: dict[str, Any] = {
                "prev_hash": row.prev_hash,
                "ts": row.ts,
                "actor_id": row.actor_id,
                "action": row.action,
                "resource_type": row.resource_type,
                "resource_id": row.resource_id,
                "client_ip": row.client_ip,
                "details": row.details or {},
            }
            if hmac.compare_digest(event_hash(key=key, **fields), row.hash):
                keyed += 1
            elif keyed == 0 and legacy_event_hash(**fields) == row.hash:
                legacy += 1  # before the chain was keyed; only an unbroken prefix is accepted
            else:
                return _broken(
                    checked,
                    row.id,
                    "content",
                    "this event was edited, or its hash was not made with this AUDIT_HMAC_KEY",
                )
            expected_prev = row.hash
            anchor_seen = anchor_seen or hmac.compare_digest(row.hash, anchor or "")
            checked += 1
            last_id = row.id
    report: dict[str, Any] = {
        "ok": True,
        "checked": checked,
        "keyed": keyed,
        "unkeyed_prefix": legacy,
        "head": expected_prev,
        "proves": PROVES,
        "does_not_prove": DOES_NOT_PROVE,
    }
    if legacy and not keyed:
        report.update(
            ok=False,
            reason="no event is keyed: the whole chain could have been rewritten without the key",
        )
    if not anchor_seen:
        report.update(
            ok=False,
            reason="the anchored head is not in the chain: the newest events were removed or "
            "the chain was rebuilt",
        )
    return report


PROVES = (
    "Every keyed event from the first to `head` is unchanged, in order, none removed between "
    "them, and each was written by a holder of AUDIT_HMAC_KEY."
)
DOES_NOT_PROVE = (
    "That no events were removed from the end (pass --anchor with a head recorded earlier), "
    "that events in `unkeyed_prefix` are genuine, or anything against someone who holds "
    "AUDIT_HMAC_KEY (the running service does)."
)


def _broken(checked: int, row_id: int, kind: str, reason: str) -> dict[str, Any]:
    return {"ok": False, "checked": checked, "broken_at": row_id, "kind": kind, "reason": reason}


def verify_audit_chain(
    database_url: str, *, key: str | None = None, anchor: str | None = None
) -> dict[str, Any]:
    """Blocking entry point for `medsight audit verify`: `{"ok": bool, "checked": n, ...}`."""

    async def run() -> dict[str, Any]:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                secret = key.encode("utf-8") if key else None
                return await verify_chain(session, key=secret, anchor=anchor)
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


@asynccontextmanager
async def audit_refused_read(
    spool: AuditSpool | None,
    session: AsyncSession,
    *,
    action: str,
    actor_id: str | None,
    resource_id: str,
    client_ip: str | None,
) -> AsyncIterator[None]:
    """Audit a read answered 404 (`<action>.not_found`): probing ids leaves a trace too.

    Only through the spool: the request's transaction rolls back with the error.
    """
    try:
        yield
    except NotFoundError:
        if spool is not None:
            await spool.append(
                actor_id=actor_id,
                action=f"{action}.not_found",
                resource_type="analysis",
                resource_id=resource_id[:64],
                client_ip=client_ip,
            )
        raise
