"""CompletionWatch: wakes long polls at once on notify, bounds a wait, keeps no stale entries."""

from __future__ import annotations

import asyncio
import time

from backend.analysis.watch import POLL_S, CompletionWatch


async def test_notify_wakes_every_waiter_at_once() -> None:
    watch = CompletionWatch()
    started = time.perf_counter()
    waiters = [asyncio.create_task(watch.wait("a", 10)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert len(watch) == 1
    watch.notify("a")
    await asyncio.gather(*waiters)
    assert time.perf_counter() - started < POLL_S
    assert len(watch) == 0


async def test_a_wait_without_notify_is_bounded_and_leaves_nothing_behind() -> None:
    watch = CompletionWatch()
    started = time.perf_counter()
    await watch.wait("b", 0.05)
    assert 0.04 <= time.perf_counter() - started < POLL_S
    await watch.wait("c", 5)  # capped at POLL_S: the caller re-reads the database
    assert time.perf_counter() - started < 2 * POLL_S
    assert len(watch) == 0
    watch.notify("never-waited")  # harmless
    assert len(watch) == 0
