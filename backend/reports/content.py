"""What a report says, read once from an analysis result; the PDF and FHIR renderers share it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from backend.contract import DISCLAIMER as PRODUCT_DISCLAIMER
from backend.contract import (
    Alignment,
    AnalysisResult,
    Entity,
    FusionFindings,
    ImageInfo,
    ModelInfo,
    NlpFindings,
    OverallStatus,
    RiskLevel,
    Timings,
    VisionFindings,
)

# What a printed report must add to the product's disclaimer about the image model.
IMAGE_MODEL_NOTE = (
    "The image model was developed on a limited research data set of chest radiographs and is "
    "not a cleared medical device."
)
DISCLAIMER = f"{PRODUCT_DISCLAIMER} {IMAGE_MODEL_NOTE}"

# Human names for the fused anomaly score's parts; unknown keys are shown as given.
COMPONENT_LABELS: dict[str, str] = {
    "recon": "Reconstruction error (VAE)",
    "kl": "Latent KL divergence (VAE)",
    "vit": "ViT feature distance",
    "patch": "Patch-level anomaly",
    "knn": "k-NN feature distance",
    "fused": "Fused score (MedSight)",
    "published_fused": "Fused score (published formula)",
}

PARTS: tuple[str, ...] = ("vision", "nlp", "fusion")
PART_LABELS: dict[str, str] = {
    "vision": "Image analysis",
    "nlp": "Clinical text analysis",
    "fusion": "Image-text fusion",
}


@dataclass(frozen=True)
class ScoreComponent:
    """One part of the fused anomaly score, with its human name."""

    key: str
    label: str
    value: float | None
    z: float | None


@dataclass(frozen=True)
class ReportProvenance:
    """Where the result came from: input hash and description, models, threshold, code."""

    image_sha256: str | None
    image_desc: str | None
    models: dict[str, ModelInfo]  # by role, in role order
    threshold: float | None
    code_version: str | None


@dataclass(frozen=True)
class ReportEntity:
    """An entity found in the clinical text, with the group it was found in."""

    category: str
    entity: Entity

    @property
    def text(self) -> str:
        return self.entity.text

    @property
    def negated(self) -> bool:
        return self.entity.negated

    @property
    def assertion(self) -> str:
        """How the text asserts it: present, negated or uncertain."""
        if self.entity.negated:
            return "negated"
        return "uncertain" if self.entity.uncertain else "present"


@dataclass(frozen=True)
class ReportContent:
    """A renderer-independent view of one analysis result."""

    session_id: str
    task_id: str | None
    patient_ref: str | None
    created_at: datetime | None
    completed_at: datetime | None
    status: OverallStatus
    vision: VisionFindings | None
    nlp: NlpFindings | None
    fusion: FusionFindings | None
    components: tuple[ScoreComponent, ...]
    missing: dict[str, str]
    heatmap: bytes | None
    heatmap_media_type: str | None
    heatmap_missing: str | None
    entities: tuple[ReportEntity, ...]
    final_risk: RiskLevel | None
    conclusion: str
    recommendations: tuple[str, ...]
    narrative: str
    warnings: tuple[str, ...]
    provenance: ReportProvenance
    timings: Timings

    @property
    def reported_at(self) -> datetime | None:
        """The time the report speaks for: completion, else creation."""
        return self.completed_at or self.created_at


def not_available(reason: str) -> str:
    """The one wording used everywhere for a missing part."""
    return f"not available: {reason}"


def as_float(value: float | None) -> float | None:
    """The number, or None when absent, NaN or infinite (neither prints nor exports)."""
    return value if value is not None and math.isfinite(value) else None


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for people, or an en dash when absent."""
    number = as_float(value)
    return "\u2013" if number is None else f"{number:.{digits}f}"


def missing_reason(warnings: tuple[str, ...], part: str, fallback: str | None = None) -> str:
    """The pipeline's own words for why a part is missing, else ``fallback`` or a generic one."""
    lowered = [w.lower() for w in warnings]
    # A warning that starts with the part's name is about it; one that only mentions it may not be.
    for match in (str.startswith, str.__contains__):
        for warning, low in zip(warnings, lowered, strict=True):
            if match(low, part):
                return warning
    return fallback or f"the {part} stage produced no result"


def _heatmap(result: AnalysisResult) -> tuple[bytes | None, str | None, str | None]:
    """The heatmap image and its media type, or why there is none (vision present)."""
    if result.vision is None or not result.vision.heatmap_base64:
        return None, None, "the vision stage returned no heatmap"
    decoded = result.heatmap_bytes()
    if decoded is None:
        return None, None, "the heatmap is not a base64 JPEG or PNG image"
    return decoded[0], decoded[1], None


def _components(vision: VisionFindings | None) -> tuple[ScoreComponent, ...]:
    if vision is None:
        return ()
    out: list[ScoreComponent] = []
    for key, parts in vision.components.items():
        # The contract keeps each part's numbers open: `value` or `z` may be absent.
        known: dict[str, float | None] = {"value": None, "z": None}
        known.update(parts)
        out.append(
            ScoreComponent(
                key, COMPONENT_LABELS.get(key, key), as_float(known["value"]), as_float(known["z"])
            )
        )
    return tuple(out)


def _entities(nlp: NlpFindings | None) -> tuple[ReportEntity, ...]:
    if nlp is None:
        return ()
    return tuple(ReportEntity(group, e) for group, e in nlp.entities.all() if e.text)


def _image_desc(image: ImageInfo | None) -> str | None:
    if image is None:
        return None
    size = f"{image.width}\u00d7{image.height} px" if image.width and image.height else None
    return " ".join(p for p in (image.format, size) if p) or None


def _provenance(result: AnalysisResult) -> ReportProvenance:
    prov = result.provenance
    threshold = as_float(prov.threshold)
    if threshold is None and result.vision is not None:
        threshold = as_float(result.vision.threshold)
    return ReportProvenance(
        image_sha256=prov.image_sha256 or None,
        image_desc=_image_desc(result.image),
        models=dict(sorted(prov.models.items())),
        threshold=threshold,
        code_version=prov.code_version or None,
    )


def _conclusion(
    result: AnalysisResult,
    entities: tuple[ReportEntity, ...],
    missing: dict[str, str],
) -> str:
    vision, nlp, fusion = result.vision, result.nlp, result.fusion
    sentences: list[str] = []
    if vision is not None:
        sentences.append(
            f"Anomaly score {fmt(vision.anomaly_score, 1)}/100 "
            f"(threshold {fmt(vision.threshold, 1)}): {vision.risk_level.value} image risk."
        )
    if nlp is not None:
        if nlp.primary_diagnosis:
            sentences.append(
                f"Clinical text suggests {nlp.primary_diagnosis} "
                f"(confidence {fmt(nlp.diagnosis_confidence)})."
            )
        else:
            sentences.append("Clinical text names no leading condition.")
        negated = [e.text for e in entities if e.negated]
        if negated:
            sentences.append("Negated in the text: " + ", ".join(negated) + ".")
    if fusion is not None:
        sentences.append(
            f"Image-text alignment {fusion.alignment.value} "
            f"(similarity {fmt(fusion.image_text_similarity)})"
            + ("; the sources disagree." if fusion.disagreement else ".")
        )
    for part, reason in missing.items():
        sentences.append(f"{PART_LABELS[part]} {not_available(reason)}.")
    if result.final_risk is not None:
        sentences.append(f"Overall risk: {result.final_risk.value}.")
    return " ".join(sentences)


_RISK_ADVICE: dict[RiskLevel, str] = {
    RiskLevel.HIGH: "Prioritise review of this study by a radiologist.",
    RiskLevel.MEDIUM: (
        "Review by a radiologist in the routine worklist; correlate with the clinical history."
    ),
    RiskLevel.LOW: (
        "No anomaly flagged above the threshold; report through the standard workflow. "
        "A low score does not exclude disease."
    ),
}


def _recommendations(result: AnalysisResult, missing: dict[str, str]) -> tuple[str, ...]:
    risk = result.final_risk
    recs = [
        _RISK_ADVICE[risk]
        if risk is not None
        else "No risk level could be computed: review the study manually."
    ]
    fusion = result.fusion
    if fusion is not None and (fusion.disagreement or fusion.alignment is Alignment.CONFLICT):
        recs.append("Image and clinical-text findings disagree: review both before acting.")
    if missing:
        parts = ", ".join(PART_LABELS[p].lower() for p in missing)
        recs.append(
            f"Incomplete analysis ({parts} missing): do not read a missing part as a normal "
            "finding; re-run the analysis or review manually."
        )
    recs.append("Confirm every finding clinically before acting on it.")
    return tuple(recs)


def build_content(result: AnalysisResult) -> ReportContent:
    """Read an analysis result into the content every report format shows."""
    if not result.session_id:
        raise ValueError("the analysis result has no session_id")
    status = result.overall_status
    warnings = tuple(w for w in result.warnings if w)
    present = {"vision": result.vision, "nlp": result.nlp, "fusion": result.fusion}
    # A failed analysis often records one error for everything; each part then shows it.
    fallback = (
        f"the analysis failed: {warnings[0]}"
        if status is OverallStatus.FAILED and warnings
        else None
    )
    missing = {p: missing_reason(warnings, p, fallback) for p in PARTS if present[p] is None}
    heatmap, media_type, heatmap_missing = _heatmap(result)
    if result.vision is None:
        heatmap_missing = missing["vision"]
    entities = _entities(result.nlp)
    return ReportContent(
        session_id=result.session_id,
        task_id=result.task_id or None,
        patient_ref=result.patient_ref or None,
        created_at=result.created_at,
        completed_at=result.completed_at,
        status=status,
        vision=result.vision,
        nlp=result.nlp,
        fusion=result.fusion,
        components=_components(result.vision),
        missing=missing,
        heatmap=heatmap,
        heatmap_media_type=media_type,
        heatmap_missing=heatmap_missing,
        entities=entities,
        final_risk=result.final_risk,
        conclusion=_conclusion(result, entities, missing),
        recommendations=_recommendations(result, missing),
        narrative=result.report_text.strip(),
        warnings=warnings,
        provenance=_provenance(result),
        timings=result.timings,
    )
