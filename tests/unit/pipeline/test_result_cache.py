"""ResultCache: byte-bounded LRU with strong ETags; oversize bodies are served, not kept."""

from __future__ import annotations

from backend.analysis.result_cache import ResultCache


def test_lru_by_bytes_and_etags() -> None:
    cache = ResultCache(max_bytes=10)
    a = cache.put(("a", "complete", "t1"), b"aaaa")
    cache.put(("b", "complete", "t1"), b"bbbb")
    assert a.etag.startswith('"') and a.etag != cache.put(("c", "complete", "t1"), b"cc").etag
    assert cache.size_bytes == 10 and len(cache) == 3
    assert cache.get(("a", "complete", "t1")) == a  # a is now the most recent
    cache.put(("d", "complete", "t1"), b"dddd")  # evicts b (least recent), not a
    assert cache.get(("b", "complete", "t1")) is None
    assert cache.get(("a", "complete", "t1")) is not None
    assert cache.size_bytes <= 10
    # A different status or completion time is a different key (a re-run misses).
    assert cache.get(("a", "complete", "t2")) is None
    big = cache.put(("e", "complete", "t1"), b"x" * 11)
    assert big.body == b"x" * 11 and cache.get(("e", "complete", "t1")) is None
