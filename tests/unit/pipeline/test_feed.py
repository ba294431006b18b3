"""StageFeed: live events reach followers, late followers get the run's events replayed, a
finished run wakes them, and neither logs nor subscriptions outlive their bounds."""

from __future__ import annotations

import asyncio
import time

from backend.analysis.feed import StageEvent, StageFeed
from backend.contract import StageOutcome


def event(analysis_id: str, stage: str, phase: str, index: int = 0) -> StageEvent:
    return StageEvent(analysis_id, stage, phase, index, 6, 1)  # type: ignore[arg-type]


async def test_followers_get_the_runs_events_so_far_then_each_new_one() -> None:
    feed = StageFeed()
    feed.begin("a")
    feed.publish(event("a", "input", "start"))
    with feed.subscribe("a") as late, feed.subscribe("b") as other:
        assert [e.stage for e in late.replay] == ["input"]
        feed.publish(event("a", "input", "end"))
        got = await late.next(1.0)
        assert got is not None and (got.stage, got.phase) == ("input", "end")
        assert await other.next(0.01) is None  # another analysis's events are not seen
    assert feed.subscribers() == 0


async def test_a_finished_run_wakes_its_followers_at_once() -> None:
    feed = StageFeed()
    with feed.subscribe("a") as follower:
        started = time.perf_counter()
        waiting = asyncio.create_task(follower.next(5.0))
        await asyncio.sleep(0.01)
        feed.finished("a")
        assert await waiting is None
        assert time.perf_counter() - started < 1.0


async def test_a_new_run_restarts_the_log_and_counts_the_attempt() -> None:
    feed = StageFeed()
    assert feed.begin("a") == 1
    feed.publish(event("a", "input", "start"))
    assert feed.begin("a") == 2
    with feed.subscribe("a") as follower:
        assert follower.replay == []


async def test_the_log_keeps_only_the_most_recent_runs() -> None:
    feed = StageFeed(keep=3)
    for n in range(5):
        feed.begin(f"run{n}")
        feed.publish(event(f"run{n}", "input", "start"))
    with feed.subscribe("run0") as old, feed.subscribe("run4") as new:
        assert old.replay == [] and len(new.replay) == 1


def test_progress_counts_the_summary_as_the_last_step() -> None:
    start = StageEvent("a", "vision", "start", 1, 6, 1)
    end = StageEvent("a", "vision", "end", 1, 6, 1, StageOutcome.OK, 12.0)
    assert start.progress == round(1 / 7, 3) and end.progress == round(2 / 7, 3)
    last = StageEvent("a", "report", "end", 5, 6, 1, StageOutcome.OK, 1.0)
    assert last.progress < 1.0
