"""Scheduled upkeep: re-queue stale jobs, delete uploads and results past retention."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio
from sqlalchemy import delete, select

from backend.db.base import utcnow
from backend.db.models import Analysis
from backend.db.session import transaction

if TYPE_CHECKING:
    from backend.state import AppState

logger = logging.getLogger(__name__)

_FINAL = ("complete", "partial", "failed", "cancelled")


async def requeue_stale(state: AppState) -> int:
    recover = getattr(state.queue, "recover_stale", None)
    if recover is None:
        return 0
    count: int = await recover()
    return count


async def purge_expired(state: AppState) -> int:
    """Delete finished analyses (and their uploads) older than RETENTION_DAYS."""
    cutoff = utcnow() - timedelta(days=state.settings.retention_days)
    async with transaction(state.sessionmaker) as session:
        rows = (
            await session.execute(
                select(Analysis.id, Analysis.image_key).where(
                    Analysis.created_at < cutoff, Analysis.status.in_(_FINAL)
                )
            )
        ).all()
        for _, key in rows:
            await anyio.to_thread.run_sync(state.storage.delete, key)
        if rows:
            await session.execute(delete(Analysis).where(Analysis.id.in_([r[0] for r in rows])))
    if rows:
        state.results.discard({str(r[0]) for r in rows})
        logger.info("purged expired analyses", extra={"count": len(rows)})
    return len(rows)
