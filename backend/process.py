"""Process-wide interpreter settings for the service and its workers."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys
import time

from backend.config import Settings

logger = logging.getLogger(__name__)


def configure_process(settings: Settings) -> None:
    """Apply settings that belong to the whole process (call once at start-up).

    The GIL switch interval: inference runs in threads that release the GIL inside ONNX
    Runtime but need it for a few Python lines between calls (the NLP stage embeds ten clauses
    one call each while another thread extracts entities). With CPython's default 5 ms
    interval each hand-over can wait up to 5 ms behind pure-Python work on another thread;
    0.5 ms cut the NLP stage from 35 to 26 ms here and bounds how long a compute thread can
    keep the event loop waiting.

    BLAS threads: numpy's OpenBLAS starts one thread per core, and after each product its idle
    threads busy-wait for the next one. The service only multiplies small matrices (cosine
    similarities, nearest-normal distances) from many concurrent jobs, so those threads gave no
    speed and burned a core: on the 2-core bench machine the spinning thread used ≈ 35 ms of
    CPU per analysis, and one BLAS thread raised throughput at 8 clients from 14.5 to 17/s.
    Parallelism comes from running jobs side by side, not from threads inside one product.
    """
    sys.setswitchinterval(max(settings.gil_switch_interval_ms, 0.05) / 1000.0)
    if settings.blas_threads > 0:
        limit_blas_threads(settings.blas_threads)
    watch_gc_pauses()


_GC_SLOW_MS = 50.0
_gc_started: list[float] = []


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
    elif _gc_started:
        elapsed_ms = (time.perf_counter() - _gc_started[0]) * 1000
        if elapsed_ms >= _GC_SLOW_MS:
            # Every thread, the event loop included, stood still this long.
            logger.warning(
                "slow garbage collection",
                extra={
                    "generation": info.get("generation"),
                    "duration_ms": round(elapsed_ms, 1),
                    "collected": info.get("collected"),
                },
            )


def watch_gc_pauses() -> None:
    """Log a warning for every garbage collection that stops the process for 50 ms or more."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


def stop_watching_gc_pauses() -> None:
    """At the app's shutdown: its log handlers may be gone before the process is."""
    if _on_gc in gc.callbacks:
        gc.callbacks.remove(_on_gc)


def limit_blas_threads(threads: int) -> None:
    """Cap the BLAS pools already loaded in this process (numpy's OpenBLAS) at `threads`."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of the pinned requirements
        logger.warning("threadpoolctl is missing; BLAS threads left at the library default")
        return
    import numpy  # noqa: F401 - load the BLAS library so that its pool is found and capped

    threadpool_limits(limits=threads, user_api="blas")


def freeze_heap(*, collect: bool = False) -> None:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze``).

    Loaded models (torch modules, spaCy pipelines, tokenizers, Chroma) leave over half a
    million tracked objects, and each full collection walks all of them: ≈ 250 ms with the
    default models on the bench machine, longer under load. Full collections come every few
    tens of seconds in a busy service and stopped every request at once: in the 200-connection
    load test the result reads' p99 inside a 5 s window jumped from ≈ 50 ms to 400-700 ms at
    each one. Frozen objects are never scanned; objects created later are collected as usual.
    ``collect`` first frees today's garbage (a pause of its own: call it at start-up only).
    """
    if collect:
        gc.collect()
    gc.freeze()


def trim_heap() -> None:
    """Return freed heap memory to the operating system (glibc's ``malloc_trim``).

    Loading a model frees a lot of temporary memory (checkpoint buffers, the first-start ONNX
    export and quantisation) that glibc otherwise keeps mapped: measured here, resident memory
    after loading the default models went from 1,210-1,240 MB to 1,116 MB with a cold ONNX
    cache, and from 1,120 to 1,090 MB with a warm one. A no-op on other C libraries.
    """
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return
    trim(0)


def settle_heap(*, collect: bool = False) -> None:
    """After loading something long-lived: freeze what is alive, give freed memory back."""
    freeze_heap(collect=collect)
    trim_heap()
