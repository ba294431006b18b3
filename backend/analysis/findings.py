"""From the models' outputs to the contract's typed findings (one place, used by the stages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from backend.contract import (
    DifferentialItem,
    Entity,
    EntityGroups,
    FusionFindings,
    ModelInfo,
    NlpFindings,
    Region,
    VisionFindings,
)
from backend.contract.heatmap import to_data_uri

if TYPE_CHECKING:
    from backend.ml.fusion import FusionResult
    from backend.ml.nlp.types import NLPResult
    from backend.ml.vision.scorer import VisionResult


def vision_findings(
    result: VisionResult, heatmap_jpeg: bytes | None, scale: float = 1.0
) -> VisionFindings:
    """`scale`: pixels of the uploaded image per pixel of the analysed working copy."""
    return VisionFindings(
        anomaly_score=round(float(result.anomaly_score), 2),
        risk_level=result.risk_level,
        threshold=round(float(result.threshold), 2),
        components=result.components,
        heatmap_base64=to_data_uri(heatmap_jpeg, "image/jpeg") if heatmap_jpeg else None,
        heatmap_media_type="image/jpeg" if heatmap_jpeg else None,
        top_regions=[_scaled(r, scale) for r in result.top_regions],
        model_confidence=round(float(result.model_confidence), 4),
        ood_score=round(float(result.ood_score), 4),
    )


def nlp_findings(result: NLPResult) -> NlpFindings:
    groups = {
        group: [Entity.model_validate(e.to_dict()) for e in entities]
        for group, entities in result.entities.items()
        if group in EntityGroups.model_fields
    }
    return NlpFindings(
        entities=EntityGroups(**groups),
        primary_diagnosis=result.primary_diagnosis,
        diagnosis_confidence=float(result.diagnosis_confidence),
        differential=[_differential_item(d) for d in result.differential],
        ranking_method=result.ranking_method,
    )


def _differential_item(item: dict[str, Any]) -> DifferentialItem:
    data = dict(item)
    data.setdefault("disease", data.get("condition"))
    return DifferentialItem.model_validate(data)


def fusion_findings(result: FusionResult) -> FusionFindings:
    return FusionFindings.model_validate(result.to_dict())


class DescribedModel(Protocol):
    """What a loaded model tells about itself (its metadata.json beside the weights)."""

    metadata: dict[str, Any]
    version: str


def model_info(model: DescribedModel) -> ModelInfo:
    """Name, version and weights hash of a loaded model (from its metadata)."""
    metadata = model.metadata or {}
    sha = getattr(model, "weights_sha256", None) or metadata.get("weights_sha256")
    return ModelInfo(
        name=str(metadata.get("name") or type(model).__name__),
        version=str(model.version),
        sha256=str(sha) if sha else None,
    )


def _scaled(region: dict[str, float], scale: float) -> Region:
    """A box from working-copy pixels to the uploaded image's pixels."""
    return Region(
        x=round(region["x"] * scale, 1),
        y=round(region["y"] * scale, 1),
        width=round(region["width"] * scale, 1),
        height=round(region["height"] * scale, 1),
        confidence=region["confidence"],
    )
