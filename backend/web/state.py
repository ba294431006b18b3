"""The app's long-lived parts, held by type: each domain asks for its own part, typed.

The lifespan (`backend.api.app`) adds every part in build order, each with how to close it;
`aclose()` closes them in reverse, once. Domains never see the whole state: a route asks for
exactly the part it needs (`provide(ResultCache)`), so no package has to know the others.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from fastapi import Depends, Request

logger = logging.getLogger(__name__)

T = TypeVar("T")
Closer = Callable[[], Awaitable[None] | None]


class AppState:
    """A typed registry of the app's parts with one `aclose()`."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._parts: dict[type[Any], Any] = {}
        self._closers: list[tuple[str, Closer]] = []
        self._closed = False

    def add(self, part: T, *, close: Closer | None = None, as_type: type[Any] | None = None) -> T:
        """Hold `part` under its class (or `as_type`); `close` runs at `aclose()`."""
        kind = as_type or type(part)
        if kind in self._parts:
            raise ValueError(f"{kind.__name__} is already part of the app state")
        self._parts[kind] = part
        if close is not None:
            self._closers.append((kind.__name__, close))
        return part

    def on_close(self, name: str, close: Closer) -> None:
        """Run `close` at `aclose()` (for parts that are not looked up by type)."""
        self._closers.append((name, close))

    def get(self, kind: type[T]) -> T:
        try:
            return cast(T, self._parts[kind])
        except KeyError:
            raise LookupError(f"{kind.__name__} is not part of the app state") from None

    def find(self, kind: type[T]) -> T | None:
        return cast(T | None, self._parts.get(kind))

    async def aclose(self) -> None:
        """Close every part, newest first; one failing does not stop the others."""
        if self._closed:
            return
        self._closed = True
        for name, close in reversed(self._closers):
            try:
                outcome = close()
                if outcome is not None:
                    await outcome
            except Exception:  # noqa: BLE001 - shutdown goes on
                logger.warning("closing %s failed", name, exc_info=True)
        with contextlib.suppress(Exception):
            self._parts.clear()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.medsight
    return state


_PROVIDERS: dict[type[Any], Any] = {}


def provide(kind: type[T]) -> Any:
    """`Annotated[Kind, provide(Kind)]`: the app's part of that type, as a dependency."""
    dependency = _PROVIDERS.get(kind)
    if dependency is None:

        async def get_part(request: Request) -> Any:
            return request.app.state.medsight.get(kind)

        get_part.__name__ = f"get_{kind.__name__}"
        dependency = _PROVIDERS[kind] = Depends(get_part)
    return dependency
