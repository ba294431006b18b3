"""Stage start/end events of the analyses this process runs, for `GET /analyze/events/{id}`.

The pipeline publishes on the event loop (its stages are coroutines), so plain asyncio queues
suffice. Each analysis keeps a short log of its events, so a client that connects after the
run began (or just after it ended) still gets every stage from the start. Only the process
that runs an analysis sees its stages: with Celery workers the API process sees none, and the
events route falls back to the job row (status changes and the final state).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from backend.contract import StageOutcome

Phase = Literal["start", "end"]


@dataclass(frozen=True)
class StageEvent:
    """One stage began or ended (`outcome` and `elapsed_ms` only at the end)."""

    analysis_id: str
    stage: str
    phase: Phase
    index: int  # 0-based position among `total` stages
    total: int
    attempt: int  # which run of the analysis (a retried job runs its stages again)
    outcome: StageOutcome | None = None
    elapsed_ms: float | None = None

    @property
    def progress(self) -> float:
        """0-1: how far the run is once this event has happened (stage 7 is the last step)."""
        done = self.index + (1 if self.phase == "end" else 0)
        return round(done / (self.total + 1), 3)


class Subscription:
    """What a follower sees: the events so far (`replay`), then the live ones (`next`)."""

    def __init__(self, replay: list[StageEvent]) -> None:
        self.replay = replay
        # None: the run finished; the follower re-reads the database for the final state.
        self._queue: asyncio.Queue[StageEvent | None] = asyncio.Queue()

    def _put(self, event: StageEvent | None) -> None:
        self._queue.put_nowait(event)

    async def next(self, timeout_s: float) -> StageEvent | None:
        """The next event; None when the run finished or none came within `timeout_s`."""
        try:
            return await asyncio.wait_for(self._queue.get(), max(0.0, timeout_s))
        except TimeoutError:
            return None


class StageFeed:
    """Per-analysis stage events: a bounded log of recent runs plus live subscribers."""

    def __init__(self, keep: int = 256) -> None:
        self.keep = keep
        self._log: OrderedDict[str, list[StageEvent]] = OrderedDict()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._attempts: dict[str, int] = {}

    def begin(self, analysis_id: str) -> int:
        """A run of the analysis starts: its log restarts; returns the attempt number."""
        attempt = self._attempts.get(analysis_id, 0) + 1
        self._attempts[analysis_id] = attempt
        self._log[analysis_id] = []
        self._log.move_to_end(analysis_id)
        while len(self._log) > self.keep:
            gone, _ = self._log.popitem(last=False)
            self._attempts.pop(gone, None)
        return attempt

    def publish(self, event: StageEvent) -> None:
        self._log.setdefault(event.analysis_id, []).append(event)
        for subscriber in self._subscribers.get(event.analysis_id, ()):
            subscriber._put(event)

    def finished(self, analysis_id: str) -> None:
        """The run's result is stored: wake the followers so they read it at once."""
        for subscriber in self._subscribers.get(analysis_id, ()):
            subscriber._put(None)

    @contextlib.contextmanager
    def subscribe(self, analysis_id: str) -> Iterator[Subscription]:
        """Follow one analysis: the logged events first, then each new one as it comes."""
        subscription = Subscription(list(self._log.get(analysis_id, [])))
        self._subscribers.setdefault(analysis_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            followers = self._subscribers.get(analysis_id)
            if followers is not None:
                followers.discard(subscription)
                if not followers:
                    del self._subscribers[analysis_id]

    def subscribers(self, analysis_id: str | None = None) -> int:
        if analysis_id is not None:
            return len(self._subscribers.get(analysis_id, ()))
        return sum(len(s) for s in self._subscribers.values())
