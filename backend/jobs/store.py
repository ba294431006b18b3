"""Job rows: atomic claims, completion, retries and recovery of jobs left by dead workers."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db.base import utcnow
from backend.db.models import Analysis, Job
from backend.db.session import transaction

logger = logging.getLogger(__name__)

ACTIVE_ANALYSIS = ("queued", "running")


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    analysis_id: str
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class SpecificClaim:
    """What happened when a worker asked for one named job."""

    # claimed | taken_over | running_elsewhere | finished | missing | failed_for_good
    outcome: str
    job: ClaimedJob | None = None


def worker_identity(tag: str = "") -> str:
    """host:pid[:tag] — lets a restarted process recognise jobs claimed by a dead one."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{base}:{tag}" if tag else base


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory

    async def claim(self, worker_id: str) -> ClaimedJob | None:
        """Atomically move the oldest available queued job to running and return it."""
        now = utcnow()
        async with transaction(self.factory) as session:
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            candidate = (
                select(Job.id)
                .where(Job.status == "queued", Job.available_at <= now)
                .order_by(Job.available_at, Job.created_at)
                .limit(1)
            )
            if dialect == "postgresql":
                candidate = candidate.with_for_update(skip_locked=True)
            stmt = (
                update(Job)
                .where(Job.id == candidate.scalar_subquery(), Job.status == "queued")
                .values(
                    status="running",
                    claimed_by=worker_id,
                    claimed_at=now,
                    heartbeat_at=now,
                    attempts=Job.attempts + 1,
                )
                .returning(Job.id, Job.analysis_id, Job.attempts, Job.max_attempts)
                .execution_options(synchronize_session=False)
            )
            row = (await session.execute(stmt)).first()
            if row is None:
                return None
            await session.execute(
                update(Analysis)
                .where(Analysis.id == row.analysis_id, Analysis.status == "queued")
                .values(status="running", stage="input", progress=0.0)
            )
            return ClaimedJob(row.id, row.analysis_id, row.attempts, row.max_attempts)

    async def fail_attempt(self, job: ClaimedJob, reason: str) -> bool:
        """Record a failed attempt; re-queue with backoff or fail for good. True if retried."""
        now = utcnow()
        retry = job.attempts < job.max_attempts
        async with transaction(self.factory) as session:
            if retry:
                await session.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(
                        status="queued",
                        available_at=now + timedelta(seconds=2**job.attempts),
                        claimed_by=None,
                        last_error=reason[:2000],
                    )
                )
                await session.execute(
                    update(Analysis)
                    .where(Analysis.id == job.analysis_id)
                    .values(status="queued", stage=None, progress=0.0)
                )
            else:
                await _fail_for_good(session, job.id, job.analysis_id, reason, now)
        return retry

    async def recover(self, *, stale_after: timedelta, this_host_only_dead: bool = True) -> int:
        """Re-queue jobs left running by dead workers (or fail them after max attempts).

        A job claimed on this host by a process that no longer exists is recovered at once;
        any job whose heartbeat is older than `stale_after` is recovered too (another host died).
        """
        now = utcnow()
        host = socket.gethostname()
        recovered = 0
        async with transaction(self.factory) as session:
            rows = (
                await session.execute(
                    select(
                        Job.id,
                        Job.analysis_id,
                        Job.attempts,
                        Job.max_attempts,
                        Job.claimed_by,
                        Job.heartbeat_at,
                    ).where(Job.status == "running")
                )
            ).all()
            for row in rows:
                if not _is_abandoned(row.claimed_by, row.heartbeat_at, host, now, stale_after):
                    continue
                recovered += 1
                reason = f"worker {row.claimed_by} stopped during attempt {row.attempts}"
                if row.attempts >= row.max_attempts:
                    await _fail_for_good(session, row.id, row.analysis_id, reason, now)
                    logger.warning("job failed for good", extra={"job_id": row.id})
                    continue
                await session.execute(
                    update(Job)
                    .where(Job.id == row.id, Job.status == "running")
                    .values(status="queued", available_at=now, claimed_by=None, last_error=reason)
                )
                await session.execute(
                    update(Analysis)
                    .where(Analysis.id == row.analysis_id, Analysis.status == "running")
                    .values(status="queued", stage=None, progress=0.0)
                )
                logger.warning("job re-queued", extra={"job_id": row.id, "reason": reason})
        return recovered

    async def depth(self) -> dict[str, int]:
        async with self.factory() as session:
            rows = (
                await session.execute(select(Job.status, func.count()).group_by(Job.status))
            ).all()
        return {str(status): int(count) for status, count in rows}

    async def queued_ahead(self, job_id: str, *, session: AsyncSession | None = None) -> int:
        """Jobs queued before this one (uses the caller's session when given)."""
        if session is None:
            async with self.factory() as own:
                return await self.queued_ahead(job_id, session=own)
        created = select(Job.created_at).where(Job.id == job_id).scalar_subquery()
        count = await session.scalar(
            select(func.count()).where(Job.status == "queued", Job.created_at < created)
        )
        return int(count or 0)

    # --- used by the Celery backend: a message names one job ------------------------------
    async def claim_specific(
        self, job_id: str, worker_id: str, *, takeover: bool, stale_after: timedelta
    ) -> SpecificClaim:
        """Claim the named job; with `takeover`, also a running one whose claimant is dead or stale.

        The queued→running move and the takeover are both compare-and-set updates, so a duplicate
        message (a re-send, a redelivery) can never run a job twice at the same time.
        """
        now = utcnow()
        async with transaction(self.factory) as session:
            row = (
                await session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued")
                    .values(
                        status="running",
                        claimed_by=worker_id,
                        claimed_at=now,
                        heartbeat_at=now,
                        attempts=Job.attempts + 1,
                    )
                    .returning(Job.id, Job.analysis_id, Job.attempts, Job.max_attempts)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if row is not None:
                await _mark_analysis_running(session, row.analysis_id)
                return SpecificClaim(
                    "claimed", ClaimedJob(row.id, row.analysis_id, row.attempts, row.max_attempts)
                )
            current = (
                await session.execute(
                    select(
                        Job.status,
                        Job.analysis_id,
                        Job.attempts,
                        Job.max_attempts,
                        Job.claimed_by,
                        Job.heartbeat_at,
                    ).where(Job.id == job_id)
                )
            ).first()
            if current is None:
                return SpecificClaim("missing")
            if current.status != "running":
                return SpecificClaim("finished")
            host = socket.gethostname()
            dead = _is_abandoned(current.claimed_by, current.heartbeat_at, host, now, stale_after)
            if not takeover or not dead:
                return SpecificClaim("running_elsewhere")
            if current.attempts >= current.max_attempts:
                reason = f"worker {current.claimed_by} stopped during attempt {current.attempts}"
                await _fail_for_good(session, job_id, current.analysis_id, reason, now)
                logger.warning("job failed for good", extra={"job_id": job_id, "reason": reason})
                return SpecificClaim("failed_for_good")
            claimant = (
                Job.claimed_by.is_(None)
                if current.claimed_by is None
                else Job.claimed_by == current.claimed_by
            )
            taken = (
                await session.execute(
                    update(Job)
                    .where(
                        Job.id == job_id,
                        Job.status == "running",
                        Job.attempts == current.attempts,
                        claimant,
                    )
                    .values(
                        claimed_by=worker_id,
                        claimed_at=now,
                        heartbeat_at=now,
                        attempts=Job.attempts + 1,
                        last_error=f"worker {current.claimed_by} stopped during attempt "
                        f"{current.attempts}",
                    )
                    .returning(Job.id, Job.analysis_id, Job.attempts, Job.max_attempts)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if taken is None:
                return SpecificClaim("running_elsewhere")
            await _mark_analysis_running(session, taken.analysis_id)
            logger.warning(
                "job taken over from a dead worker",
                extra={"job_id": job_id, "previous": current.claimed_by, "worker": worker_id},
            )
            return SpecificClaim(
                "taken_over",
                ClaimedJob(taken.id, taken.analysis_id, taken.attempts, taken.max_attempts),
            )

    async def heartbeat(self, job_id: str, worker_id: str) -> bool:
        """Refresh a running job's heartbeat; False when this worker no longer owns it."""
        async with transaction(self.factory) as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running", Job.claimed_by == worker_id)
                .values(heartbeat_at=utcnow())
            )
        return bool(getattr(result, "rowcount", 0))

    async def stale_queued(self, *, older_than: timedelta, limit: int = 500) -> list[str]:
        """Ids of jobs queued and available for longer than `older_than` (oldest first)."""
        cutoff = utcnow() - older_than
        async with self.factory() as session:
            rows = (
                await session.execute(
                    select(Job.id)
                    .where(Job.status == "queued", Job.available_at <= cutoff)
                    .order_by(Job.available_at, Job.created_at)
                    .limit(limit)
                )
            ).all()
        return [str(r[0]) for r in rows]


def _is_abandoned(
    claimed_by: str | None,
    heartbeat: datetime | None,
    host: str,
    now: datetime,
    stale_after: timedelta,
) -> bool:
    if claimed_by:
        parts = claimed_by.split(":")
        if len(parts) >= 2 and parts[0] == host and parts[1].isdigit():
            pid = int(parts[1])
            if pid != os.getpid() and not _pid_alive(pid):
                return True
    if heartbeat is None:
        return True
    if heartbeat.tzinfo is None:  # SQLite returns naive datetimes
        heartbeat = heartbeat.replace(tzinfo=now.tzinfo)
    return now - heartbeat > stale_after


def public_failure(reason: str) -> str:
    """What the client is told about a failure (status `error`, the result's warning).

    The full reason (worker host:pid, exception text) stays in `jobs.last_error` and the logs:
    it names machines and internals that are nobody's business outside the service.
    """
    if reason.startswith("worker "):
        return "the analysis was interrupted each time it ran (the worker stopped)"
    if reason.startswith("the attempt took longer than"):
        return reason
    return "an internal error stopped the analysis; it was logged for the operators"


async def _fail_for_good(
    session: AsyncSession, job_id: str, analysis_id: str, reason: str, now: datetime
) -> None:
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status="failed", finished_at=now, last_error=reason[:2000])
    )
    await session.execute(
        update(Analysis)
        .where(Analysis.id == analysis_id, Analysis.status.in_(ACTIVE_ANALYSIS))
        .values(
            status="failed",
            overall_status="FAILED",
            error=public_failure(reason),
            completed_at=now,
            progress=1.0,
        )
    )


async def mark_job_done(session: AsyncSession, job_id: str) -> None:
    """Mark a job done inside the caller's transaction (the runner's result transaction)."""
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status="done", finished_at=utcnow(), last_error=None)
    )


async def _mark_analysis_running(session: AsyncSession, analysis_id: str) -> None:
    await session.execute(
        update(Analysis)
        .where(Analysis.id == analysis_id, Analysis.status.in_(ACTIVE_ANALYSIS))
        .values(status="running", stage="input", progress=0.0)
    )
