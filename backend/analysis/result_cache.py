"""Serialised JSON of finished results, so repeated reads skip decode, validation and encode.

A finished result never changes (it is only ever deleted), so its JSON is built once per
process and kept in a byte-bounded LRU. The cache is never the authority: every read still
loads the row's owner, status and completion time from the database first, so a deleted or
foreign analysis is a 404 whatever is cached, and the key includes the completion time and
status, so a row that was finished again (re-run) misses.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_MAX_BYTES = 64 * 2**20


@dataclass(frozen=True)
class CachedBody:
    """A response body and its strong ETag."""

    body: bytes
    etag: str


class ResultCache:
    """Byte-bounded LRU of result bodies keyed by ``(analysis id, status, completed_at)``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, str], CachedBody] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> CachedBody | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[str, str, str], body: bytes) -> CachedBody:
        item = CachedBody(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        if len(body) > self.max_bytes:
            return item
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._items[key] = item
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.body)
        return item

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes
