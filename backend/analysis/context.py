"""What flows through the pipeline: one typed context that each stage reads and extends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backend.contract import (
    FusionFindings,
    ModelInfo,
    NlpFindings,
    OverallStatus,
    StageOutcome,
    VisionFindings,
)
from backend.imaging import DecodedImage

if TYPE_CHECKING:
    from backend.ml.nlp.types import NLPResult
    from backend.ml.vision.scorer import VisionResult


@dataclass(frozen=True)
class PipelineInput:
    analysis_id: str
    image_bytes: bytes
    image_sha256: str
    symptoms: str | None = None
    patient_ref: str | None = None


@dataclass
class PipelineContext:
    """Each stage's typed output; the contract parts are what the result is assembled from."""

    input: PipelineInput
    image: DecodedImage | None = None
    vision: VisionFindings | None = None
    heatmap_jpeg: bytes | None = None
    vision_raw: VisionResult | None = None  # input statistics for the drift monitor
    nlp: NlpFindings | None = None
    nlp_raw: NLPResult | None = None  # what fusion reads (entity assertions, ranking)
    fusion: FusionFindings | None = None
    report_text: str | None = None
    models: dict[str, ModelInfo] = field(default_factory=dict)
    calibration: dict[str, object] | None = None
    device_memory: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stage_status: dict[str, StageOutcome] = field(default_factory=dict)
    overall_status: OverallStatus | None = None

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
