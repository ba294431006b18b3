"""Process-wide settings: GIL switch interval, the BLAS thread cap, slow-collection warnings."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from backend import process
from backend.config import Settings
from backend.process import configure_process


@pytest.fixture
def restore_process() -> Iterator[None]:
    interval = sys.getswitchinterval()
    with threadpool_limits(limits=None):  # restores the BLAS pools' sizes on exit
        yield
    sys.setswitchinterval(interval)
    process.stop_watching_gc_pauses()


def _blas_threads() -> list[int]:
    import numpy  # noqa: F401 - loads the BLAS library

    return [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.mark.usefixtures("restore_process")
def test_configure_process_caps_blas_and_sets_the_switch_interval() -> None:
    configure_process(Settings(blas_threads=1, gil_switch_interval_ms=0.5))
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    pools = _blas_threads()
    assert pools, "numpy's BLAS library was not found by threadpoolctl"
    assert all(n == 1 for n in pools)


@pytest.mark.usefixtures("restore_process")
def test_blas_threads_zero_leaves_the_library_default() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        configure_process(Settings(blas_threads=0))
        assert _blas_threads() == before


def test_thread_settings_reject_negative_values() -> None:
    with pytest.raises(ValueError):
        Settings(blas_threads=-1)
    with pytest.raises(ValueError):
        Settings(vision_threads=-1)


def test_freeze_heap_moves_live_objects_out_of_collections() -> None:
    import gc

    from backend.process import freeze_heap

    keep = [{"n": i} for i in range(1000)]
    try:
        freeze_heap(collect=True)
        assert gc.get_freeze_count() >= len(keep)
    finally:
        gc.unfreeze()


def _rss_mb() -> float:
    import os

    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or "glibc" not in " ".join(__import__("platform").libc_ver()),
    reason="malloc_trim is glibc's",
)
def test_trim_heap_returns_freed_memory() -> None:
    from backend.process import trim_heap

    trim_heap()
    # 64 KB blocks sit on the malloc heap (below glibc's mmap threshold); keep every other
    # one alive so the freed ones are holes glibc cannot give back without a trim.
    blocks = [bytearray(64 * 1024) for _ in range(1024)]
    kept = blocks[1::2]
    del blocks
    before = _rss_mb()
    trim_heap()
    after = _rss_mb()
    assert len(kept) == 512
    assert after < before - 8, (before, after)


def test_slow_collections_are_logged_until_the_app_stops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(process, "_GC_SLOW_MS", 0.0)  # every collection counts as slow
    process.watch_gc_pauses()
    try:
        with caplog.at_level(logging.WARNING, logger="backend.process"):
            gc.collect()
        slow = [r for r in caplog.records if r.getMessage() == "slow garbage collection"]
        assert slow and slow[-1].generation == 2  # type: ignore[attr-defined]
    finally:
        process.stop_watching_gc_pauses()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backend.process"):
        gc.collect()
    assert not caplog.records
