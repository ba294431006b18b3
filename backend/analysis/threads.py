"""The threads that run the analysis pipeline's compute, below the event loop's CPU priority.

Analyses are batch work: a client submits one and polls, and a few hundred milliseconds more
under load cost it nothing. Result reads, status polls and chat are interactive, and they all
run on the one event-loop thread. When both want the CPU (a burst of analyses during heavy
read traffic) the loop should win: the pipeline's threads run with a higher nice value
(``INFERENCE_NICE``), so the kernel gives the loop the CPU first and the analyses the rest.

Measured in the 200-connection load test on 2 cores, during the burst of 60 analyses at its
start: see ``bench/RESULTS.md``. An idle machine is unaffected (nice only matters when the
CPU is contended), and threads a pipeline thread starts (the NLP stage's embedding thread)
inherit its priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import ctypes.util
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_NICE = 19


def lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by `increment` (Linux).

    Lowering priority never needs privileges; it cannot be undone without them, which is why
    only threads that do nothing else are lowered.
    """
    if increment <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, current + increment))
    except OSError:
        logger.warning("could not lower the inference threads' CPU priority", exc_info=True)


THREAD_NAME = "medsight-infer"  # the kernel's name (15 characters at most), seen by ps and top


def _start_thread(increment: int) -> None:
    """Pool thread initializer: lower the priority and name the thread for `top -H`, `ps`."""
    lower_thread_priority(increment)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(15, THREAD_NAME.encode(), 0, 0, 0)  # PR_SET_NAME; children inherit it


class InferenceThreads:
    """A bounded pool of lower-priority threads; ``run_sync`` awaits one call on it."""

    def __init__(self, threads: int, *, nice: int = 0) -> None:
        self.threads = max(1, threads)
        self.nice = max(0, nice)
        self._executor = ThreadPoolExecutor(
            max_workers=self.threads,
            thread_name_prefix=THREAD_NAME,
            initializer=_start_thread,
            initargs=(self.nice,),
        )

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a pool thread (with the caller's context variables)."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await loop.run_in_executor(self._executor, call)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
