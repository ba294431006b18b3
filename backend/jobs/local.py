"""In-process queue: asyncio workers that claim committed job rows from the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from backend.jobs.base import JobRunner
from backend.jobs.store import ClaimedJob, JobStore, worker_identity

logger = logging.getLogger(__name__)


class LocalQueue:
    """A pool of asyncio workers. Durable: the database row is the queue, memory is only a hint."""

    name = "local"

    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        *,
        concurrency: int = 2,
        poll_interval_s: float = 1.0,
        stale_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.runner = runner
        self.concurrency = max(1, concurrency)
        self.poll_interval_s = poll_interval_s
        self.stale_after = stale_after
        self.worker_id = worker_identity("local")
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = 0
        self._processed = 0
        self._stopping = False

    async def start(self) -> None:
        recovered = await self.store.recover(stale_after=self.stale_after)
        if recovered:
            logger.warning("recovered abandoned jobs", extra={"count": recovered})
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._worker(i), name=f"medsight-worker-{i}")
            for i in range(self.concurrency)
        ]
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def enqueue(self, job_id: str) -> None:
        self._wakeup.set()

    async def recover_stale(self) -> int:
        return await self.store.recover(stale_after=self.stale_after)

    async def state(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "workers": len(self._tasks),
            "alive": sum(1 for t in self._tasks if not t.done()),
            "busy": self._running,
            "processed": self._processed,
            "jobs": await self.store.depth(),
        }

    async def _worker(self, index: int) -> None:
        while not self._stopping:
            try:
                job = await self.store.claim(self.worker_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("claim failed")
                await asyncio.sleep(self.poll_interval_s)
                continue
            if job is None:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_interval_s)
                continue
            # Others may be waiting on the same event: let one more look for work.
            self._wakeup.set()
            await self._run(job)

    async def _run(self, job: ClaimedJob) -> None:
        self._running += 1
        try:
            await self.runner(job.id, job.analysis_id)  # marks the job done
        except asyncio.CancelledError:
            # Shutdown mid-job: leave the row running; recovery re-queues it on the next start.
            raise
        except Exception as exc:
            logger.exception("job attempt failed", extra={"job_id": job.id})
            await self.store.fail_attempt(job, f"{type(exc).__name__}: {exc}")
        finally:
            self._running -= 1
            self._processed += 1
