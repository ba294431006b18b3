"""Concurrent callers with the same key share one call's answer (or its error).

Under 200 connections, every expiry of a cached credential or result otherwise sent a burst of
identical database queries at once (`accounts/auth_cache.py`, `analysis/result_cache.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """`run(key, load)`: load() once for the callers that overlap on `key`."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        while (pending := self._inflight.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # The loading caller was cancelled (its client left): load again.
        pending = asyncio.get_running_loop().create_future()
        pending.add_done_callback(_retrieve)
        self._inflight[key] = pending
        try:
            value = await load()
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            del self._inflight[key]
        if not pending.done():
            pending.set_result(value)
        return value


def _retrieve(future: asyncio.Future[V]) -> None:
    # An error nobody else waited for must not log "exception was never retrieved".
    if not future.cancelled():
        future.exception()
