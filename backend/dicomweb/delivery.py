"""The PACS sender: finished analyses go back to their study as an SR and a heatmap series.

One asyncio task per API process sweeps the outbox (every PACS_SWEEP_INTERVAL_S, and at once
when this process commits a result), claims due deliveries, builds the two DICOM instances in a
thread and stores them by STOW-RS. A PACS that is down is retried with exponential backoff
and jitter until PACS_GIVE_UP_AFTER_H after the analysis finished; rows survive restarts, and a
claim whose sender died is taken over when its lease runs out. Results written by Celery
workers are found by the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime, timedelta

import anyio
from sqlalchemy import select

from backend.config import Settings
from backend.contract import AnalysisResult, AnalysisStatus, load_result
from backend.db.base import utcnow
from backend.db.models import Analysis
from backend.db.session import Database
from backend.dicomweb.client import PacsError, StowClient
from backend.dicomweb.outbox import Claim, Outbox
from backend.dicomweb.writers import Targets, WriterError, result_instances
from backend.jobs.store import worker_identity
from backend.storage import ObjectStorage

logger = logging.getLogger(__name__)

_DELIVERABLE = {AnalysisStatus.COMPLETE.value, AnalysisStatus.PARTIAL.value}


def backoff_s(attempts: int, base_s: float, max_s: float, *, jitter: float = 0.2) -> float:
    """Seconds before attempt `attempts + 1`: base * 2^(attempts-1), capped, +-jitter."""
    delay = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return float(delay * (1 + random.uniform(-jitter, jitter)))  # noqa: S311 - spreading, not secrecy


class PacsSender:
    """Claims due outbox rows and delivers them; `wake()` after a result is committed."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: ObjectStorage,
        *,
        client: StowClient | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.client = client or StowClient(settings)
        self.outbox = Outbox(database.sessionmaker, worker_identity("pacs"))
        self.sessionmaker = database.sessionmaker
        self.lease = timedelta(seconds=settings.pacs_timeout_s * 2 + 30)
        self._limiter = anyio.CapacityLimiter(settings.pacs_concurrency)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="medsight-pacs-sender")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    def wake(self, _analysis_id: str = "") -> None:
        self._wakeup.set()

    async def _loop(self) -> None:
        while True:
            try:
                claimed = await self.run_once()
            except Exception:  # noqa: BLE001 - the database may be away; try again next sweep
                logger.warning("PACS outbox sweep failed", exc_info=True)
                claimed = 0
            if claimed:
                continue  # there may be more due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.pacs_sweep_interval_s)
            self._wakeup.clear()

    async def run_once(self) -> int:
        """Claim what is due (up to PACS_CONCURRENCY) and deliver it; the number claimed."""
        claims = await self.outbox.claim(self.settings.pacs_concurrency, self.lease)
        if claims:
            await asyncio.gather(*(self.deliver(claim) for claim in claims))
        return len(claims)

    async def deliver(self, claim: Claim) -> None:
        """One attempt; its outcome is recorded on the row (never raised)."""
        async with self.sessionmaker() as session:
            analysis = await session.scalar(
                select(Analysis).where(Analysis.id == claim.analysis_id)
            )
        if analysis is None:
            return  # erased meanwhile; its row went with it
        if analysis.status not in _DELIVERABLE or analysis.result is None:
            await self.outbox.give_up(
                claim, f"nothing to send: the analysis is {analysis.status}", status="skipped"
            )
            return
        result = load_result(
            analysis.result, created_at=analysis.created_at, completed_at=analysis.completed_at
        )
        if result.vision is None:
            await self.outbox.give_up(
                claim,
                "nothing to send: the image was not scored (see the result's warnings)",
                status="skipped",
            )
            return
        try:
            instances = await self._build(analysis.image_key, result, claim)
            await self.client.store(instances, (claim.sr_instance_uid, claim.image_instance_uid))
        except WriterError as exc:
            await self.outbox.give_up(claim, f"the DICOM results could not be built: {exc}")
            logger.warning(
                "PACS delivery cannot be built", extra={"analysis_id": claim.analysis_id}
            )
        except PacsError as exc:
            await self._failed(claim, exc, analysis.completed_at)
        except Exception as exc:  # noqa: BLE001 - e.g. storage unreachable: try again later
            logger.warning("PACS delivery attempt failed", exc_info=True)
            await self._failed(
                claim,
                PacsError(f"internal error ({type(exc).__name__})", transient=True),
                analysis.completed_at,
            )
        else:
            await self.outbox.delivered(claim)
            logger.info("delivered to the PACS", extra={"analysis_id": claim.analysis_id})

    async def _build(self, image_key: str, result: AnalysisResult, claim: Claim) -> list[bytes]:
        source = await anyio.to_thread.run_sync(self.storage.get, image_key)
        targets = Targets(
            study_instance_uid=claim.study_instance_uid,
            sr_series_uid=claim.sr_series_uid,
            sr_instance_uid=claim.sr_instance_uid,
            image_series_uid=claim.image_series_uid,
            image_instance_uid=claim.image_instance_uid,
        )
        return await anyio.to_thread.run_sync(
            result_instances, source, result, targets, limiter=self._limiter
        )

    async def _failed(self, claim: Claim, error: PacsError, finished: datetime | None) -> None:
        now = utcnow()
        if finished is not None and finished.tzinfo is None:  # SQLite hands back naive UTC
            finished = finished.replace(tzinfo=now.tzinfo)
        deadline = (finished or now) + timedelta(hours=self.settings.pacs_give_up_after_h)
        if not error.transient or now >= deadline:
            why = error.message if not error.transient else f"gave up: {error.message}"
            await self.outbox.give_up(claim, why)
            logger.warning(
                "PACS delivery failed for good",
                extra={"analysis_id": claim.analysis_id, "attempts": claim.attempts},
            )
            return
        delay = backoff_s(
            claim.attempts, self.settings.pacs_retry_base_s, self.settings.pacs_retry_max_s
        )
        await self.outbox.retry(claim, error.message, now + timedelta(seconds=delay))
        logger.info(
            "PACS delivery will be retried",
            extra={"analysis_id": claim.analysis_id, "attempts": claim.attempts, "in_s": delay},
        )
