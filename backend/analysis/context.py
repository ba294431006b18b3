"""What flows through the pipeline: one typed context that each stage reads and extends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.imaging import DecodedImage


@dataclass(frozen=True)
class PipelineInput:
    analysis_id: str
    image_bytes: bytes
    image_sha256: str
    symptoms: str | None = None
    patient_ref: str | None = None


@dataclass
class PipelineContext:
    input: PipelineInput
    image: DecodedImage | None = None
    vision: Any = None  # backend.ml.vision.VisionResult
    vision_model: Any = None
    heatmap_png: bytes | None = None
    nlp: Any = None  # backend.ml.nlp.NLPResult
    nlp_model: Any = None
    fusion: Any = None  # backend.ml.fusion.FusionResult
    report_text: str | None = None
    device_memory: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stage_status: dict[str, str] = field(default_factory=dict)  # ok | failed | skipped
    overall_status: str | None = None

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
