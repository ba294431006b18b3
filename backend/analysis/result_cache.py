"""Serialised JSON of finished results, so repeated reads skip the database, decode and encode.

A finished result never changes (it is only ever deleted), so its JSON is built once per
process and kept in a byte-bounded LRU with the row's owner, status and completion time.

A read served from the cache still checks the owner, but skips the database only while the
entry was confirmed against the database less than ``revalidate_s`` ago; after that the read
loads the row's owner, status and completion time again (and a deleted row is a 404 whatever
is cached). Deletions made by this process discard their entries at once (``discard``,
``discard_owner``); a deletion made by another replica is seen within ``revalidate_s``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from backend.web.responses import RawHeaders, encode_headers
from backend.web.single_flight import SingleFlight

DEFAULT_MAX_BYTES = 64 * 2**20
# Entries are keyed by analysis id, or `<id>#<variant>` for other forms of the same result.
VARIANT_SEP = "#"
DEFAULT_REVALIDATE_S = 10.0
# A finished result never changes, but it can be deleted: clients revalidate with its ETag.
CACHE_CONTROL = "private, no-cache"


@dataclass
class CachedBody:
    """A result's response body, its strong ETag, and what it was checked against."""

    body: bytes
    etag: str
    owner_key: str = ""
    version: tuple[str, str] = ("", "")  # (status, completed_at) of the row it was built from
    checked_at: float = field(default_factory=time.monotonic)
    # The HTTP layer's headers for this body, encoded on first use (immutable like the body).
    raw_headers: RawHeaders | None = None

    def response_headers(self) -> RawHeaders:
        """The headers of a 200 answer with this body (JSON, ETag, revalidated each use)."""
        if self.raw_headers is None:
            self.raw_headers = encode_headers(
                self.body, "application/json", {"ETag": self.etag, "Cache-Control": CACHE_CONTROL}
            )
        return self.raw_headers


def variant_key(analysis_id: str, variant: str | None) -> str:
    """The cache key of one form of a result (e.g. without its inline heatmap)."""
    return analysis_id if not variant else f"{analysis_id}{VARIANT_SEP}{variant}"


class ResultCache:
    """Byte-bounded LRU of result bodies keyed by analysis id (and variant)."""

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, revalidate_s: float = DEFAULT_REVALIDATE_S
    ) -> None:
        self.max_bytes = max_bytes
        self.revalidate_s = revalidate_s
        self._items: OrderedDict[str, CachedBody] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._flights: SingleFlight[tuple[str, str], CachedBody] = SingleFlight()

    async def single_flight(
        self, key: tuple[str, str], load: Callable[[], Awaitable[CachedBody]]
    ) -> CachedBody:
        """load() once for concurrent callers with the same key; they share its answer or error.

        Under 200 connections an entry's periodic check otherwise sent up to 200 identical
        queries at once.
        """
        return await self._flights.run(key, load)

    def fresh(self, analysis_id: str, owner_key: str) -> CachedBody | None:
        """The entry when it belongs to `owner_key` and was confirmed recently, else None."""
        with self._lock:
            item = self._items.get(analysis_id)
            if item is None or item.owner_key != owner_key:
                return None
            if time.monotonic() - item.checked_at >= self.revalidate_s:
                return None
            self._items.move_to_end(analysis_id)
            return item

    def confirmed(
        self, analysis_id: str, owner_key: str, version: tuple[str, str]
    ) -> CachedBody | None:
        """The entry for this row version, marked as just checked against the database."""
        with self._lock:
            item = self._items.get(analysis_id)
            if item is None or item.owner_key != owner_key or item.version != version:
                return None
            item.checked_at = time.monotonic()
            self._items.move_to_end(analysis_id)
            return item

    def put(
        self, analysis_id: str, body: bytes, *, owner_key: str, version: tuple[str, str]
    ) -> CachedBody:
        item = CachedBody(
            body,
            '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            owner_key=owner_key,
            version=version,
        )
        if len(body) > self.max_bytes:
            return item
        with self._lock:
            self._pop(analysis_id)
            self._items[analysis_id] = item
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.body)
        return item

    def discard(self, analysis_ids: list[str] | tuple[str, ...] | set[str]) -> None:
        """Drop every entry of these analyses (each form of their result, their heatmap)."""
        with self._lock:
            for analysis_id in analysis_ids:
                for key in [k for k in self._items if k.split(VARIANT_SEP, 1)[0] == analysis_id]:
                    self._pop(key)

    def discard_owner(self, owner_key: str) -> None:
        with self._lock:
            for key in [k for k, v in self._items.items() if v.owner_key == owner_key]:
                self._pop(key)

    def _pop(self, analysis_id: str) -> None:
        old = self._items.pop(analysis_id, None)
        if old is not None:
            self._bytes -= len(old.body)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes
