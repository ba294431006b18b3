"""Scheduled upkeep: re-queue stale jobs, delete uploads and results past retention."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from backend.analysis.service import delete_analyses
from backend.contract import FINAL_STATUSES
from backend.db.base import utcnow
from backend.db.models import Analysis
from backend.db.session import transaction

if TYPE_CHECKING:
    from backend.analysis.result_cache import ResultCache
    from backend.analysis.runtime import AnalysisRuntime

logger = logging.getLogger(__name__)


async def requeue_stale(runtime: AnalysisRuntime) -> int:
    recover = getattr(runtime.queue, "recover_stale", None)
    if recover is None:
        return 0
    count: int = await recover()
    return count


async def purge_expired(runtime: AnalysisRuntime, results: ResultCache) -> int:
    """Delete finished analyses (and their uploads) older than RETENTION_DAYS."""
    cutoff = utcnow() - timedelta(days=runtime.settings.retention_days)
    async with transaction(runtime.database.sessionmaker) as session:
        rows = (
            await session.execute(
                select(Analysis.id, Analysis.image_key).where(
                    Analysis.created_at < cutoff, Analysis.status.in_(FINAL_STATUSES)
                )
            )
        ).all()
        await delete_analyses(session, runtime.storage, [(r[0], r[1]) for r in rows])
    if rows:
        results.discard({str(r[0]) for r in rows})
        logger.info("purged expired analyses", extra={"count": len(rows)})
    return len(rows)
