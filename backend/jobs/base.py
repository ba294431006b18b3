"""The queue protocol: the local DB-backed queue and the Celery backend both implement it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# Runs one claimed job to completion and marks it done in the transaction that stores its
# result (so a job can never be left running behind a finished analysis); raising means "this
# attempt failed", which the queue records.
JobRunner = Callable[[str, str], Awaitable[None]]  # (job_id, analysis_id)


class JobQueue(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def enqueue(self, job_id: str) -> None:
        """Hand a committed job row to the workers."""

    async def state(self) -> dict[str, Any]: ...
