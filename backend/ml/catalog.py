"""Which models the service uses and how each is built from settings (imports stay lazy)."""

from __future__ import annotations

from typing import Any

from backend.config import Settings
from backend.ml.registry import ModelRegistry, ModelSpec

VISION = "vision"
NLP = "nlp"
EMBEDDER = "embedder"
WHISPER = "whisper"


def register_default_models(registry: ModelRegistry, settings: Settings) -> None:
    """Register every model the product serves, with priorities and memory estimates."""

    def load_vision(device: str, _deps: dict[str, Any]) -> Any:
        from backend.ml.vision import load_scorer

        # "pulmonary" (the seed's name) is the VGG16 -> VAE -> ViT checkpoint, checked at
        # start-up (config.py); it runs on the same runtimes as any other checkpoint.
        backend = settings.vision_anomaly_backend
        return load_scorer(
            settings.vision_model_dir,
            calibration=settings.vision_calibration,
            backend="auto" if backend == "pulmonary" else backend,
            vgg16_weights=settings.vision_vgg16_weights,
            device=device,
            fusion=settings.vision_fusion,
            onnx_threads=settings.vision_threads,
            onnx_cache_dir=settings.model_cache_dir,
        )

    def load_embedder(device: str, _deps: dict[str, Any]) -> Any:
        from backend.ml.embeddings import load_minilm

        return load_minilm(device=device, model_path=settings.embedding_model)

    def load_nlp(_device: str, deps: dict[str, Any]) -> Any:
        from backend.ml.nlp import load_clinical_nlp

        return load_clinical_nlp(
            settings.nlp_model_dir,
            embedder=deps.get(EMBEDDER),
            runtime=settings.nlp_runtime,
            cache_dir=settings.model_cache_dir,
            parallel=settings.inference_threads > 1,
        )

    def load_whisper(device: str, _deps: dict[str, Any]) -> Any:
        from backend.ml.speech import load_transcriber

        return load_transcriber(
            settings.whisper_model,
            device=device,
            prompt=settings.dictation_prompt,
            correct_terms=settings.dictation_correction,
        )

    registry.register(
        ModelSpec(VISION, load_vision, priority=1, est_cpu_mb=250, est_gpu_mb=300, required=True)
    )
    # Analyses with symptoms need the NLP model (and its embedder): both gate readiness.
    registry.register(
        ModelSpec(
            EMBEDDER, load_embedder, priority=2, est_cpu_mb=120, est_gpu_mb=150, required=True
        )
    )
    registry.register(
        ModelSpec(
            NLP,
            load_nlp,
            priority=2,
            est_cpu_mb=300,
            depends_on=(EMBEDDER,),
            device="cpu",
            required=True,
        )
    )
    registry.register(ModelSpec(WHISPER, load_whisper, priority=3, est_cpu_mb=150, device="cpu"))
