"""The model registry: every model's life in one place.

Models are registered as specs (name, priority, loader, memory estimates, device preference,
required flag). They load lazily and asynchronously, once, under a per-model lock. GPU use is
kept under a budget by moving the least recently used model to the CPU; without CUDA everything
lives on the CPU. Stages ask the registry for a model by name and never load weights themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import anyio

logger = logging.getLogger(__name__)


class ModelState(StrEnum):
    REGISTERED = "registered"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class Movable(Protocol):
    """A loaded model that can change device (torch-backed models implement this)."""

    def to(self, device: str) -> Any: ...


@dataclass
class ModelSpec:
    """How to build one model and what it costs."""

    name: str
    # Called in a worker thread with the target device and the loaded models it depends on.
    loader: Callable[[str, dict[str, Any]], Any]
    priority: int = 5  # lower loads first when preloading
    est_cpu_mb: float = 100.0
    est_gpu_mb: float = 0.0  # 0: this model never uses the GPU
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    required: bool = False  # readiness fails while a required model is not loaded
    version: str | None = None
    depends_on: tuple[str, ...] = ()


@dataclass
class _Entry:
    spec: ModelSpec
    state: ModelState = ModelState.REGISTERED
    model: Any = None
    device: str | None = None
    error: str | None = None
    load_ms: float | None = None
    last_used: float = 0.0
    uses: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ModelUnavailableError(RuntimeError):
    """A model could not be loaded; the message says why."""


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return bool(torch.cuda.is_available())


class ModelRegistry:
    """Lazily loads registered models and keeps GPU memory under `gpu_budget_mb` (LRU eviction)."""

    def __init__(
        self,
        *,
        gpu_budget_mb: float,
        has_cuda: bool | None = None,
        mover: Callable[[Any, str], Any] | None = None,
        thread_limiter: anyio.CapacityLimiter | None = None,
        on_loaded: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.gpu_budget_mb = float(gpu_budget_mb)
        self.on_loaded = on_loaded  # called with (name, model) after each load
        self.has_cuda = cuda_available() if has_cuda is None else has_cuda
        self._entries: dict[str, _Entry] = {}
        self._gpu_lru: OrderedDict[str, float] = OrderedDict()  # name -> reserved MB
        self._move = mover or _default_move
        self._limiter = thread_limiter or anyio.CapacityLimiter(2)
        self._placement_lock = asyncio.Lock()

    # --- registration -------------------------------------------------------------------
    def register(self, spec: ModelSpec) -> None:
        if spec.name in self._entries:
            raise ValueError(f"model {spec.name!r} is already registered")
        self._entries[spec.name] = _Entry(spec=spec)

    def names(self) -> list[str]:
        return sorted(self._entries, key=lambda n: (self._entries[n].spec.priority, n))

    def is_registered(self, name: str) -> bool:
        return name in self._entries

    # --- access -------------------------------------------------------------------------
    async def get(self, name: str) -> Any:
        """Return the loaded model, loading it on first use (concurrent callers load once)."""
        entry = self._entry(name)
        if not _is_ready(entry):
            async with entry.lock:
                # Another caller may have loaded it while this one waited for the lock.
                if not _is_ready(entry):
                    await self._load(entry)
        await self._touch(entry)
        return entry.model

    def get_loaded(self, name: str) -> Any | None:
        entry = self._entries.get(name)
        return entry.model if entry and entry.state is ModelState.READY else None

    async def preload(self, names: list[str] | None = None) -> None:
        """Load models in priority order; a failing optional model is logged, not raised."""
        for name in names or self.names():
            entry = self._entry(name)
            try:
                await self.get(name)
            except ModelUnavailableError:
                if entry.spec.required:
                    raise

    def device_of(self, name: str) -> str | None:
        return self._entry(name).device

    def gpu_used_mb(self) -> float:
        return sum(self._gpu_lru.values())

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot for health and metrics."""
        return {
            "gpu_budget_mb": self.gpu_budget_mb,
            "gpu_used_mb": round(self.gpu_used_mb(), 1),
            "cuda": self.has_cuda,
            "models": {
                name: {
                    "state": e.state.value,
                    "device": e.device,
                    "priority": e.spec.priority,
                    "required": e.spec.required,
                    "version": e.spec.version or _model_version(e.model),
                    "load_ms": e.load_ms,
                    "error": e.error,
                    "uses": e.uses,
                }
                for name, e in ((n, self._entries[n]) for n in self.names())
            },
        }

    def ready(self) -> bool:
        """True when every required model is loaded."""
        return all(e.state is ModelState.READY for e in self._entries.values() if e.spec.required)

    async def unload_all(self) -> None:
        for entry in self._entries.values():
            entry.model = None
            entry.state = ModelState.REGISTERED
            entry.device = None
        self._gpu_lru.clear()
        release_device_memory()

    # --- internals ----------------------------------------------------------------------
    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ModelUnavailableError(f"no model named {name!r} is registered") from None

    def _wants_gpu(self, spec: ModelSpec) -> bool:
        if not self.has_cuda or spec.est_gpu_mb <= 0 or spec.device == "cpu":
            return False
        return spec.est_gpu_mb <= self.gpu_budget_mb

    async def _load(self, entry: _Entry) -> None:
        spec = entry.spec
        deps = {name: await self.get(name) for name in spec.depends_on}
        entry.state = ModelState.LOADING
        device = "cpu"
        if self._wants_gpu(spec):
            async with self._placement_lock:
                await self._make_room(spec.est_gpu_mb, exclude=spec.name)
                self._gpu_lru[spec.name] = spec.est_gpu_mb
            device = "cuda"
        started = time.perf_counter()
        try:
            model = await anyio.to_thread.run_sync(spec.loader, device, deps, limiter=self._limiter)
        except Exception as exc:
            self._gpu_lru.pop(spec.name, None)
            entry.state = ModelState.FAILED
            entry.error = f"{type(exc).__name__}: {exc}"
            logger.exception("model load failed", extra={"model": spec.name})
            raise ModelUnavailableError(f"model {spec.name!r} failed to load: {exc}") from exc
        entry.model = model
        entry.device = device
        entry.error = None
        entry.load_ms = round((time.perf_counter() - started) * 1000, 1)
        entry.state = ModelState.READY
        logger.info(
            "model loaded", extra={"model": spec.name, "device": device, "load_ms": entry.load_ms}
        )
        if self.on_loaded is not None:
            self.on_loaded(spec.name, model)

    async def _touch(self, entry: _Entry) -> None:
        entry.last_used = time.monotonic()
        entry.uses += 1
        name = entry.spec.name
        if name in self._gpu_lru:
            self._gpu_lru.move_to_end(name)
            return
        # A model that was evicted to the CPU comes back to the GPU when used again.
        if entry.device == "cpu" and self._wants_gpu(entry.spec):
            async with self._placement_lock:
                await self._make_room(entry.spec.est_gpu_mb, exclude=name)
                await anyio.to_thread.run_sync(
                    self._move, entry.model, "cuda", limiter=self._limiter
                )
                entry.device = "cuda"
                self._gpu_lru[name] = entry.spec.est_gpu_mb

    async def _make_room(self, needed_mb: float, *, exclude: str) -> None:
        """Evict least recently used GPU models to the CPU until `needed_mb` fits."""
        while self._gpu_lru and self.gpu_used_mb() + needed_mb > self.gpu_budget_mb:
            victim = next(iter(self._gpu_lru))
            if victim == exclude:
                self._gpu_lru.move_to_end(victim)
                if len(self._gpu_lru) == 1:
                    break
                continue
            self._gpu_lru.pop(victim)
            entry = self._entries[victim]
            if entry.model is not None:
                await anyio.to_thread.run_sync(
                    self._move, entry.model, "cpu", limiter=self._limiter
                )
            entry.device = "cpu"
            logger.info("model evicted to cpu", extra={"model": victim})
        release_device_memory()


def _is_ready(entry: _Entry) -> bool:
    return entry.state is ModelState.READY


def _default_move(model: Any, device: str) -> Any:
    mover = getattr(model, "to", None)
    if callable(mover):
        return mover(device)
    return model


def _model_version(model: Any) -> str | None:
    version = getattr(model, "version", None)
    return str(version) if version is not None else None


def release_device_memory() -> dict[str, float]:
    """Free cached accelerator memory (pipeline stage 3); returns what was reserved before/after."""
    try:
        import gc

        import torch
    except ImportError:  # pragma: no cover
        return {}
    if not torch.cuda.is_available():
        # Nothing to hand back on a CPU-only host; a full gc here would cost milliseconds per job.
        return {"cuda_reserved_mb": 0.0}
    gc.collect()
    before = torch.cuda.memory_reserved() / 2**20
    torch.cuda.empty_cache()
    after = torch.cuda.memory_reserved() / 2**20
    return {"cuda_reserved_before_mb": round(before, 1), "cuda_reserved_mb": round(after, 1)}
