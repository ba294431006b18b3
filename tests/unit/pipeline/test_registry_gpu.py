"""On a CUDA machine: the registry's eviction moves a real model to the CPU and frees its memory.

Skipped without CUDA (CI and the 2-core dev machines have none); on a GPU host run
``pytest -rs tests/unit/pipeline/test_registry_gpu.py``. Passed on a lent NVIDIA H200 on
2026-12-04 (docs/results.md).
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cuda_mb() -> float:
    return float(torch.cuda.memory_allocated() / 2**20)


def _on(model: Any) -> set[str]:
    net = getattr(model, "net", model)
    return {p.device.type for p in net.parameters()}


async def test_eviction_moves_the_vision_model_to_cpu_and_frees_its_memory() -> None:
    from backend.ml.registry import ModelRegistry, ModelSpec
    from backend.ml.vision import load_scorer

    def load_vision(device: str, _deps: dict[str, Any]) -> Any:
        return load_scorer(backend="torch", device=device)

    def load_block(device: str, _deps: dict[str, Any]) -> Any:
        return torch.nn.Linear(4096, 4096).to(device)  # 64 MB of float32 weights

    torch.cuda.empty_cache()
    baseline = _cuda_mb()
    reg = ModelRegistry(gpu_budget_mb=400, has_cuda=True)
    reg.register(ModelSpec("vision", load_vision, est_gpu_mb=300))
    reg.register(ModelSpec("block", load_block, est_gpu_mb=200))

    vision = await reg.get("vision")
    assert reg.device_of("vision") == "cuda" and _on(vision) == {"cuda"}
    with_vision = _cuda_mb()
    assert with_vision - baseline > 10  # the real network is resident on the GPU

    block = await reg.get("block")  # 300 + 200 > 400: the vision model is evicted
    assert reg.device_of("vision") == "cpu" and _on(vision) == {"cpu"}
    assert reg.device_of("block") == "cuda" and _on(block) == {"cuda"}
    block_mb = 4096 * 4097 * 4 / 2**20
    # The vision model's memory went back: what is left is the block (plus allocator slack).
    assert _cuda_mb() - baseline < block_mb + 0.1 * (with_vision - baseline) + 8
    # And it still scores on the CPU after eviction.
    import numpy as np

    image = np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8)
    assert 0.0 <= vision.score_batch([image])[0].anomaly_score <= 100.0
    await reg.unload_all()
