"""ResultCache: byte-bounded LRU with strong ETags, owner checks and revalidation."""

from __future__ import annotations

import time

from backend.analysis.result_cache import ResultCache

V1 = ("complete", "t1")


def test_lru_by_bytes_and_etags() -> None:
    cache = ResultCache(max_bytes=10)
    a = cache.put("a", b"aaaa", owner_key="o", version=V1)
    cache.put("b", b"bbbb", owner_key="o", version=V1)
    assert (
        a.etag.startswith('"') and a.etag != cache.put("c", b"cc", owner_key="o", version=V1).etag
    )
    assert cache.size_bytes == 10 and len(cache) == 3
    assert cache.fresh("a", "o") == a  # a is now the most recent
    cache.put("d", b"dddd", owner_key="o", version=V1)  # evicts b (least recent), not a
    assert cache.fresh("b", "o") is None
    assert cache.fresh("a", "o") is not None
    assert cache.size_bytes <= 10
    big = cache.put("e", b"x" * 11, owner_key="o", version=V1)
    assert big.body == b"x" * 11 and cache.fresh("e", "o") is None


def test_another_owner_never_gets_the_entry() -> None:
    cache = ResultCache()
    cache.put("a", b"{}", owner_key="alice", version=V1)
    assert cache.fresh("a", "bob") is None
    assert cache.confirmed("a", "bob", V1) is None
    assert cache.fresh("a", "alice") is not None


def test_entries_need_revalidation_after_the_window() -> None:
    cache = ResultCache(revalidate_s=0.05)
    cache.put("a", b"{}", owner_key="o", version=V1)
    assert cache.fresh("a", "o") is not None
    time.sleep(0.06)
    assert cache.fresh("a", "o") is None  # the caller must read the row again
    # The row still has this version: confirmed, and fresh again for another window.
    assert cache.confirmed("a", "o", V1) is not None
    assert cache.fresh("a", "o") is not None
    # A row finished again (another status or completion time) is a miss.
    assert cache.confirmed("a", "o", ("partial", "t2")) is None
    zero = ResultCache(revalidate_s=0)
    zero.put("a", b"{}", owner_key="o", version=V1)
    assert zero.fresh("a", "o") is None


def test_deletions_discard_entries() -> None:
    cache = ResultCache()
    for name, owner in (("a", "alice"), ("b", "alice"), ("c", "bob")):
        cache.put(name, b"{}", owner_key=owner, version=V1)
    cache.discard({"a"})
    assert cache.fresh("a", "alice") is None and cache.fresh("b", "alice") is not None
    cache.discard_owner("alice")
    assert cache.fresh("b", "alice") is None and cache.fresh("c", "bob") is not None
    assert len(cache) == 1 and cache.size_bytes == 2
