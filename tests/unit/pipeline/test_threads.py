"""Inference threads: bounded, below the event loop's CPU priority, context preserved."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading

import pytest

from backend.analysis.threads import InferenceThreads

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
async def test_pool_threads_run_at_lower_priority_than_the_loop() -> None:
    pool = InferenceThreads(2, nice=7)
    try:
        loop_nice = _nice_of_this_thread()
        pool_nice = await pool.run_sync(_nice_of_this_thread)
        assert pool_nice == min(19, loop_nice + 7)
        assert _nice_of_this_thread() == loop_nice  # the loop's own thread is untouched
    finally:
        pool.shutdown()


async def test_calls_are_bounded_and_keep_context() -> None:
    pool = InferenceThreads(2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(x: int) -> tuple[int, str]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.02)
        with lock:
            running -= 1
        return x * 2, VAR.get()

    VAR.set("request-1")
    try:
        results = await asyncio.gather(*(pool.run_sync(work, i) for i in range(8)))
    finally:
        pool.shutdown()
    assert [r[0] for r in results] == [i * 2 for i in range(8)]
    assert all(r[1] == "request-1" for r in results)
    assert peak == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names via prctl")
async def test_pool_threads_carry_an_os_name() -> None:
    from pathlib import Path

    def comm() -> str:
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()

    pool = InferenceThreads(1)
    try:
        assert await pool.run_sync(comm) == "medsight-infer"
    finally:
        pool.shutdown()
