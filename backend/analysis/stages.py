"""The seven pipeline stages. Each has a name, the context fields it needs, and one `run`.

A stage that fails records a warning naming itself; later stages that do not need its output
still run. Stages draw models from the registry and never load weights themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from backend.analysis.batching import MicroBatcher
from backend.analysis.context import PipelineContext
from backend.analysis.findings import fusion_findings, model_info, nlp_findings, vision_findings
from backend.analysis.narrative import build_narrative
from backend.analysis.threads import InferenceThreads
from backend.imaging import ImageLimits, decode_image
from backend.ml.catalog import NLP, VISION
from backend.ml.registry import ModelRegistry, release_device_memory

if TYPE_CHECKING:
    from backend.ml.nlp.pipeline import ClinicalNLP
    from backend.ml.vision.scorer import VisionScorer

logger = logging.getLogger(__name__)

# Panels are rendered at most this tall: enough to read, small enough to store with the result.
HEATMAP_MAX_SIDE = 512


class StageSkipped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a stage that has nothing to do (not a failure).

    `withheld`: the stage deliberately gives no output (the result is PARTIAL, with a warning);
    `quiet`: nothing was asked of it (no warning, e.g. no symptoms were given).
    """

    def __init__(self, message: str, *, withheld: bool = False, quiet: bool = False) -> None:
        super().__init__(message)
        self.withheld = withheld
        self.quiet = quiet


class Stage(Protocol):
    name: str
    timing_key: str | None
    requires: tuple[str, ...]

    async def run(self, ctx: PipelineContext) -> None: ...


@dataclass
class StageDeps:
    registry: ModelRegistry
    batcher: MicroBatcher
    threads: InferenceThreads
    limits: ImageLimits
    population_warning: bool = True


class InputStage:
    name: str = "input"
    timing_key: str | None = "preprocess_ms"
    requires: tuple[str, ...] = ()

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    async def run(self, ctx: PipelineContext) -> None:
        ctx.image = await self.deps.threads.run_sync(
            decode_image, ctx.input.image_bytes, self.deps.limits
        )
        for note in ctx.image.warnings:
            ctx.warn(f"input: {note}")


class VisionStage:
    name: str = "vision"
    timing_key: str | None = "vision_ms"
    requires: tuple[str, ...] = ("image",)

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    async def run(self, ctx: PipelineContext) -> None:
        assert ctx.image is not None  # noqa: S101 - guaranteed by `requires`
        scorer: VisionScorer = await self.deps.registry.get(VISION)
        ctx.models["vision"] = model_info(scorer)
        ctx.calibration = dict(scorer.calibration_info)
        result = await self.deps.batcher.submit(scorer.score_batch, ctx.image.pixels)
        ctx.vision_raw = result
        if not result.is_chest_xray:
            raise StageSkipped(
                "the image does not look like a chest X-ray "
                f"(out-of-distribution score {result.ood_score:.2f}); no anomaly score is given",
                withheld=True,
            )
        from backend.ml.vision import render_heatmap_panels

        image, heatmap = _downscale(ctx.image.pixels, result.heatmap, HEATMAP_MAX_SIDE)
        k = image.shape[0] / ctx.image.pixels.shape[0]
        regions = [
            {key: v * k for key, v in r.items() if key != "confidence"} for r in result.top_regions
        ]
        ctx.heatmap_jpeg = await self.deps.threads.run_sync(
            render_heatmap_panels, image, heatmap, regions
        )
        ctx.vision = vision_findings(result, ctx.heatmap_jpeg, scale=ctx.image.scale)
        if result.outside_population and self.deps.population_warning:
            ctx.warn(population_warning(result.outside_population, result.input_stats))


def population_warning(names: tuple[str, ...], stats: dict[str, float]) -> str:
    """The result's warning for an image outside the reference population."""
    from backend.ml.vision.population import describe_outside

    return (
        "vision: this image lies outside the population the model was validated on "
        f"({describe_outside(names, stats)}), for example another age group, projection or "
        "acquisition; the anomaly score and heatmap are less reliable for it"
    )


class MemoryStage:
    name: str = "memory"
    timing_key: str | None = None
    requires: tuple[str, ...] = ()

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    async def run(self, ctx: PipelineContext) -> None:
        ctx.device_memory = release_device_memory()


class NlpStage:
    name: str = "nlp"
    timing_key: str | None = "nlp_ms"
    requires: tuple[str, ...] = ()

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    async def run(self, ctx: PipelineContext) -> None:
        text = (ctx.input.symptoms or "").strip()
        if not text:
            raise StageSkipped("no symptoms were given", quiet=True)
        model: ClinicalNLP = await self.deps.registry.get(NLP)
        ctx.models["nlp"] = model_info(model)
        raw = await self.deps.threads.run_sync(model.analyze, text)
        ctx.nlp_raw, ctx.nlp = raw, nlp_findings(raw)


class FusionStage:
    name: str = "fusion"
    timing_key: str | None = "fusion_ms"
    requires: tuple[str, ...] = ()

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    async def run(self, ctx: PipelineContext) -> None:
        from backend.ml.fusion import VisionEvidence, fuse

        if ctx.vision is None and ctx.nlp_raw is None:
            raise StageSkipped("neither image nor text evidence is available", quiet=True)
        evidence = None
        if ctx.vision is not None:
            evidence = VisionEvidence(
                anomaly_score=ctx.vision.anomaly_score,
                threshold=ctx.vision.threshold,
                risk_level=ctx.vision.risk_level.value,
            )
        ctx.fusion = fusion_findings(fuse(evidence, ctx.nlp_raw))


class ReportStage:
    name: str = "report"
    timing_key: str | None = "report_ms"
    requires: tuple[str, ...] = ()

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    async def run(self, ctx: PipelineContext) -> None:
        ctx.report_text = build_narrative(ctx)


def default_stages(deps: StageDeps) -> list[Stage]:
    """Stages 1-6 in order; stage 7 (status) is the orchestrator's own summary."""
    return [
        InputStage(deps),
        VisionStage(deps),
        MemoryStage(deps),
        NlpStage(deps),
        FusionStage(deps),
        ReportStage(deps),
    ]


def _downscale(
    image: npt.NDArray[np.uint8], heatmap: npt.NDArray[np.float32], max_side: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image, heatmap
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    small_map = np.asarray(
        cv2.resize(np.asarray(heatmap, dtype=np.float32), size, interpolation=cv2.INTER_AREA),
        dtype=np.float32,
    )
    return small, small_map
