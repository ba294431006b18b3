"""The queue protocol: the local DB-backed queue and the Celery backend both implement it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# Runs one claimed job to completion; raising means "this attempt failed".
JobRunner = Callable[[str, str], Awaitable[None]]  # (job_id, analysis_id)


class JobQueue(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def enqueue(self, job_id: str) -> None:
        """Hand a committed job row to the workers."""

    async def state(self) -> dict[str, Any]: ...
