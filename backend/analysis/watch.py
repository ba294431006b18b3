"""Wake-ups for long-polling status requests (``GET /analyze/status/{id}?wait=N``).

The database stays the truth: a waiting request re-reads the row after every wake-up and at
least every ``POLL_S`` seconds, so jobs finished by another process (Celery workers, another
replica) are seen too, only a little later. Jobs finished in this process wake it at once.
"""

from __future__ import annotations

import asyncio
import contextlib

POLL_S = 0.5


class CompletionWatch:
    """Events for analyses someone is waiting on (reference-counted, so nothing leaks)."""

    def __init__(self) -> None:
        self._events: dict[str, tuple[asyncio.Event, int]] = {}

    def notify(self, analysis_id: str) -> None:
        """The analysis reached a final state in this process: wake every waiter."""
        entry = self._events.pop(analysis_id, None)
        if entry is not None:
            entry[0].set()

    async def wait(self, analysis_id: str, at_most_s: float) -> None:
        """Return when notified or after ``min(at_most_s, POLL_S)`` seconds, whichever is first."""
        event, count = self._events.get(analysis_id, (asyncio.Event(), 0))
        self._events[analysis_id] = (event, count + 1)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(0.0, min(at_most_s, POLL_S)))
        finally:
            current = self._events.get(analysis_id)
            if current is not None and current[0] is event:
                if current[1] <= 1:
                    del self._events[analysis_id]
                else:
                    self._events[analysis_id] = (event, current[1] - 1)

    def __len__(self) -> int:
        return len(self._events)
