"""Model registry: lazy single loads, priorities, GPU budget with LRU eviction (simulated sizes)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from backend.ml.registry import ModelRegistry, ModelSpec, ModelUnavailableError


class FakeModule:
    """A stand-in for a torch module's device bookkeeping (sizes are simulated)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.device = "none"
        self.moves: list[str] = []

    def to(self, device: str) -> FakeModule:
        self.device = device
        self.moves.append(device)
        return self


def spec(name: str, gpu_mb: float, calls: list[str], **kw: Any) -> ModelSpec:
    def load(device: str, deps: dict[str, Any]) -> FakeModule:
        calls.append(name)
        time.sleep(0.05)  # slow enough for concurrent callers to overlap
        return FakeModule(name).to(device)

    return ModelSpec(name=name, loader=load, est_gpu_mb=gpu_mb, **kw)


async def test_concurrent_first_requests_load_once() -> None:
    calls: list[str] = []
    loaded: list[tuple[str, Any]] = []
    reg = ModelRegistry(
        gpu_budget_mb=1000, has_cuda=False, on_loaded=lambda n, m: loaded.append((n, m))
    )
    reg.register(spec("vision", 100, calls))
    models = await asyncio.gather(*(reg.get("vision") for _ in range(10)))
    assert calls == ["vision"]
    assert all(m is models[0] for m in models)
    assert loaded == [("vision", models[0])]  # the load hook runs once, with the model
    assert reg.state()["models"]["vision"]["state"] == "ready"
    assert reg.device_of("vision") == "cpu"  # no CUDA: everything on the CPU


async def test_lru_eviction_keeps_gpu_under_budget() -> None:
    calls: list[str] = []
    reg = ModelRegistry(gpu_budget_mb=1000, has_cuda=True)
    for name, size in (("a", 400), ("b", 400), ("c", 400)):
        reg.register(spec(name, size, calls))
    a = await reg.get("a")
    b = await reg.get("b")
    assert reg.gpu_used_mb() == 800 and a.device == b.device == "cuda"
    await reg.get("a")  # a is now more recently used than b
    c = await reg.get("c")
    assert reg.gpu_used_mb() <= 1000
    assert c.device == "cuda" and a.device == "cuda"
    assert b.device == "cpu" and b.moves[-1] == "cpu"  # the least recently used went to CPU
    assert reg.device_of("b") == "cpu"
    # Using b again brings it back and evicts the now-LRU model (a).
    await reg.get("b")
    assert b.device == "cuda" and a.device == "cpu"
    assert reg.gpu_used_mb() <= 1000


async def test_model_bigger_than_budget_stays_on_cpu() -> None:
    calls: list[str] = []
    reg = ModelRegistry(gpu_budget_mb=300, has_cuda=True)
    reg.register(spec("big", 500, calls))
    model = await reg.get("big")
    assert model.device == "cpu" and reg.gpu_used_mb() == 0


async def test_cpu_only_models_never_use_gpu() -> None:
    calls: list[str] = []
    reg = ModelRegistry(gpu_budget_mb=3000, has_cuda=True)
    reg.register(spec("nlp", 100, calls, device="cpu"))
    assert (await reg.get("nlp")).device == "cpu"


async def test_failed_load_is_reported_and_blocks_readiness() -> None:
    def broken(device: str, deps: dict[str, Any]) -> Any:
        raise FileNotFoundError("weights missing")

    reg = ModelRegistry(gpu_budget_mb=100, has_cuda=False)
    reg.register(ModelSpec("vision", broken, required=True))
    reg.register(ModelSpec("extra", lambda d, deps: FakeModule("x"), required=False))
    with pytest.raises(ModelUnavailableError, match="weights missing"):
        await reg.get("vision")
    state = reg.state()["models"]["vision"]
    assert state["state"] == "failed" and "weights missing" in state["error"]
    assert not reg.ready()
    with pytest.raises(ModelUnavailableError):
        await reg.get("unknown")


async def test_preload_follows_priority_and_dependencies() -> None:
    order: list[str] = []
    lock = threading.Lock()

    def loader(name: str) -> Any:
        def load(device: str, deps: dict[str, Any]) -> Any:
            with lock:
                order.append(name)
            return {"name": name, "deps": sorted(deps)}

        return load

    reg = ModelRegistry(gpu_budget_mb=0, has_cuda=False)
    reg.register(ModelSpec("whisper", loader("whisper"), priority=3))
    reg.register(ModelSpec("nlp", loader("nlp"), priority=2, depends_on=("embedder",)))
    reg.register(ModelSpec("embedder", loader("embedder"), priority=2))
    reg.register(ModelSpec("vision", loader("vision"), priority=1, required=True))
    await reg.preload()
    assert order == ["vision", "embedder", "nlp", "whisper"]
    assert (await reg.get("nlp"))["deps"] == ["embedder"]
    assert reg.ready()
