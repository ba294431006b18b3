"""The API side of the Celery backend: publish committed jobs, re-send lost ones.

The job row is committed before anything is published, so a broker outage or an API crash
between commit and publish loses nothing: a periodic sweep re-sends jobs that stayed queued
for JOB_RESEND_AFTER_S (with backoff per job), and re-queues jobs whose worker died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import anyio

from backend.config import Settings
from backend.jobs.celery_app import RUN_JOB_TASK, CeleryOptions, create_celery_app
from backend.jobs.store import JobStore

logger = logging.getLogger(__name__)

# Per job, the n-th re-send waits resend_after * 2**n (capped): a long backlog is not flooded.
_MAX_RESEND_FACTOR = 16


class CeleryQueue:
    """Hands committed job rows to Celery workers through Redis."""

    name = "celery"

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings = settings
        self.store = store
        self.opts = CeleryOptions.from_settings(settings)
        self.app = create_celery_app(self.opts)
        self._sweeper: asyncio.Task[None] | None = None
        # job id -> (sends so far, monotonic time of the last send) in this process
        self._sent: dict[str, tuple[int, float]] = {}
        self._published = 0
        self._publish_errors = 0
        self._resent = 0
        self._recovered = 0
        self._last_sweep: float | None = None
        self._redis: Any = None  # a plain client for the queue length (readiness, metrics)

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="medsight-celery-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await anyio.to_thread.run_sync(self._close_pools)

    def _close_pools(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.close()
        with contextlib.suppress(Exception):
            self.app.pool.force_close_all()
        with contextlib.suppress(Exception):
            self.app.close()

    async def enqueue(self, job_id: str) -> None:
        """Publish one committed job; on a broker error the row stays queued for the sweep."""
        count, _ = self._sent.get(job_id, (0, 0.0))
        self._sent[job_id] = (count + 1, time.monotonic())
        try:
            await anyio.to_thread.run_sync(self._publish, job_id)
        except Exception:  # noqa: BLE001 - the committed row is the source of truth
            self._publish_errors += 1
            logger.warning("publish failed; the sweep will re-send", extra={"job_id": job_id})
            return
        self._published += 1

    def _publish(self, job_id: str) -> None:
        # The job row is the result of record. Not subscribing to a Celery result per message
        # keeps a publish to one round trip and fails it in ~2 s (not ~20) when Redis is down.
        self.app.send_task(RUN_JOB_TASK, args=[job_id], queue=self.opts.queue, ignore_result=True)

    async def recover_stale(self) -> int:
        """Re-queue jobs of dead workers and re-send queued jobs nobody claimed; returns both."""
        recovered = await self.store.recover(stale_after=timedelta(seconds=self.opts.stale_after_s))
        if recovered:
            self._recovered += recovered
            logger.warning("re-queued jobs of dead workers", extra={"count": recovered})
        resent = 0
        queued = await self.store.stale_queued(
            older_than=timedelta(seconds=self.opts.resend_after_s)
        )
        now = time.monotonic()
        waiting = set(queued)
        for job_id in [j for j in list(self._sent) if j not in waiting]:
            # Only prune what is old enough to be in `queued`; fresh sends are not there yet.
            if now - self._sent[job_id][1] > self.opts.resend_after_s:
                del self._sent[job_id]
        for job_id in queued:
            count, last = self._sent.get(job_id, (0, 0.0))
            factor = min(2 ** max(0, count - 1), _MAX_RESEND_FACTOR)
            if count and now - last < self.opts.resend_after_s * factor:
                continue
            await self.enqueue(job_id)
            resent += 1
        if resent:
            self._resent += resent
            logger.warning("re-sent queued jobs nobody claimed", extra={"count": resent})
        self._last_sweep = time.time()
        return recovered + resent

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.recover_stale()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - e.g. the database restarting: try next time
                logger.warning("queue sweep failed", exc_info=True)
            await asyncio.sleep(self.opts.sweep_interval_s)

    async def broker_depth(self) -> int:
        """Messages waiting in the Redis queue (not counting ones a worker holds)."""
        return await anyio.to_thread.run_sync(self._llen, abandon_on_cancel=True)

    def _llen(self) -> int:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(
                self.opts.broker_url, socket_timeout=3, socket_connect_timeout=2
            )
        return int(self._redis.llen(self.opts.queue))

    async def state(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": self.name,
            "queue": self.opts.queue,
            "published": self._published,
            "publish_errors": self._publish_errors,
            "resent": self._resent,
            "recovered": self._recovered,
            "last_sweep": self._last_sweep,
            "sweeping": self._sweeper is not None and not self._sweeper.done(),
        }
        try:
            with anyio.fail_after(3):
                info["broker_queue_length"] = await self.broker_depth()
            info["alive"] = 1
        except Exception as exc:  # noqa: BLE001 - readiness reports it
            info["alive"] = 0
            info["error"] = f"broker unreachable: {type(exc).__name__}"
        info["jobs"] = await self.store.depth()
        return info
