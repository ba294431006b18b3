"""Micro-batching: concurrent jobs' images are scored together in one forward pass."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from backend.analysis.threads import InferenceThreads

logger = logging.getLogger(__name__)

BatchFn = Callable[[Sequence[Any]], list[Any]]
I = TypeVar("I")  # noqa: E741 - item
O = TypeVar("O")  # noqa: E741 - output


class MicroBatcher:
    """Collect requests for up to `max_wait_ms` or `max_batch` items, then run one batch call.

    The batch function runs on the inference threads, so the event loop never blocks on
    inference. With `max_batch == 1` every call runs alone.
    """

    def __init__(
        self,
        *,
        max_batch: int,
        max_wait_ms: float,
        threads: InferenceThreads,
    ) -> None:
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.threads = threads
        self._pending: list[tuple[BatchFn, Any, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, fn: Callable[[Sequence[I]], list[O]], item: I) -> O:
        """`fn([item, ...])[i]` for this item, run alone or in a batch with concurrent callers."""
        if self.max_batch == 1:
            self.batches += 1
            self.items += 1
            results = await self.threads.run_sync(fn, [item])
            return results[0]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fn, item, future))
        if len(self._pending) >= self.max_batch:
            self._flush_now()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())
        result: O = await future
        return result

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.max_wait_s)
        self._flush_now()

    def _flush_now(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        task = asyncio.create_task(self._run(batch))
        task.add_done_callback(_log_task_error)
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())

    async def _run(self, batch: list[tuple[BatchFn, Any, asyncio.Future[Any]]]) -> None:
        # Items with different functions (e.g. two model versions) are run separately.
        groups: dict[int, list[tuple[BatchFn, Any, asyncio.Future[Any]]]] = {}
        for entry in batch:
            groups.setdefault(id(entry[0]), []).append(entry)
        for group in groups.values():
            fn = group[0][0]
            items = [item for _, item, _ in group]
            self.batches += 1
            self.items += len(items)
            try:
                results = await self.threads.run_sync(fn, items)
            except Exception as exc:  # noqa: BLE001 - delivered to every waiting caller
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _, _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending = []


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("micro-batch failed", exc_info=task.exception())
