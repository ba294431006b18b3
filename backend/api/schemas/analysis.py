"""Request/response models of the analysis API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AnalysisState = Literal["queued", "running", "complete", "partial", "failed", "cancelled"]


class AnalyzeAccepted(BaseModel):
    task_id: str
    session_id: str
    status: AnalysisState
    queue_position: int = Field(ge=0)
    estimated_wait_s: float = Field(ge=0)


class AnalysisStatusOut(BaseModel):
    task_id: str
    session_id: str
    status: AnalysisState
    stage: str | None
    progress: float = Field(ge=0, le=1)
    attempts: int
    error: str | None = None


class Region(BaseModel):
    x: float
    y: float
    width: float
    height: float
    confidence: float


class VisionOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    anomaly_score: float = Field(ge=0, le=100)
    risk_level: Literal["LOW", "MODERATE", "HIGH"]
    threshold: float
    components: dict[str, dict[str, float | None]]
    heatmap_base64: str | None
    heatmap_media_type: str | None = None
    top_regions: list[Region]
    model_confidence: float = Field(ge=0, le=1)


class EntityOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str
    start: int
    end: int
    negated: bool
    uncertain: bool


class DifferentialItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    condition: str
    confidence: float = Field(ge=0, le=1)


class NlpOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    entities: dict[str, list[EntityOut]]
    primary_diagnosis: str | None
    diagnosis_confidence: float
    differential: list[DifferentialItem]


class FusionOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    image_text_similarity: float = Field(ge=0, le=1)
    alignment: Literal["strong", "moderate", "weak", "conflict"]
    final_risk: Literal["LOW", "MODERATE", "HIGH"]
    disagreement: bool


class Timings(BaseModel):
    preprocess_ms: float
    vision_ms: float
    nlp_ms: float
    fusion_ms: float
    report_ms: float
    total_ms: float


class Provenance(BaseModel):
    model_config = ConfigDict(extra="allow")

    image_sha256: str
    models: dict[str, dict[str, Any]]
    threshold: float | None
    code_version: str


class AnalysisResultOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    session_id: str
    task_id: str
    patient_ref: str | None
    overall_status: Literal["COMPLETE", "PARTIAL", "FAILED"]
    vision: VisionOut | None
    nlp: NlpOut | None
    fusion: FusionOut | None
    report_text: str
    timings: Timings
    warnings: list[str]
    provenance: Provenance
    disclaimer: str
