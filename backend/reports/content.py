"""What a report says, read once from an analysis result; the PDF and FHIR renderers share it."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend import DISCLAIMER as PRODUCT_DISCLAIMER

# The product's one disclaimer, plus what a printed report must add about the image model.
DISCLAIMER = (
    f"{PRODUCT_DISCLAIMER} The image model was developed on a limited research data set of chest "
    "radiographs and is not a cleared medical device."
)

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
ENTITY_CATEGORIES: tuple[str, ...] = ("diseases", "symptoms", "medications", "anatomy")


@dataclass(frozen=True)
class ModelInfo:
    """One model that contributed to the result."""

    role: str
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class Provenance:
    """Where the result came from: input hash, models, threshold, code version."""

    image_sha256: str | None
    image_desc: str | None
    models: tuple[ModelInfo, ...]
    threshold: float | None
    code_version: str | None


@dataclass(frozen=True)
class Entity:
    """An entity found in the clinical text."""

    category: str
    text: str
    negated: bool
    uncertain: bool

    @property
    def assertion(self) -> str:
        """How the text asserts it: present, negated or uncertain."""
        if self.negated:
            return "negated"
        return "uncertain" if self.uncertain else "present"


@dataclass(frozen=True)
class ReportContent:
    """A normalised, renderer-independent view of one analysis result."""

    session_id: str
    task_id: str | None
    patient_ref: str | None
    created_at: datetime | None
    completed_at: datetime | None
    status: str
    vision: Mapping[str, Any] | None
    nlp: Mapping[str, Any] | None
    fusion: Mapping[str, Any] | None
    missing: dict[str, str]
    heatmap_png: bytes | None
    heatmap_missing: str | None
    entities: tuple[Entity, ...]
    final_risk: str | None
    conclusion: str
    recommendations: tuple[str, ...]
    narrative: str
    warnings: tuple[str, ...]
    provenance: Provenance
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reported_at(self) -> datetime | None:
        """The time the report speaks for: completion, else creation."""
        return self.completed_at or self.created_at


def not_available(reason: str) -> str:
    """The one wording used everywhere for a missing part."""
    return f"not available: {reason}"


def as_float(value: Any) -> float | None:
    """A finite number, or None when absent, not numeric, NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from ISO-8601; naive times are taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def missing_reason(warnings: tuple[str, ...], part: str, fallback: str | None = None) -> str:
    """The pipeline's own words for why a part is missing, else ``fallback`` or a generic one."""
    lowered = [w.lower() for w in warnings]
    # A warning that starts with the part's name is about it; one that only mentions it may not be.
    for match in (str.startswith, str.__contains__):
        for warning, low in zip(warnings, lowered, strict=True):
            if match(low, part):
                return warning
    return fallback or f"the {part} stage produced no result"


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def decode_heatmap(vision: Mapping[str, Any] | None) -> tuple[bytes | None, str | None]:
    """The heatmap image bytes (JPEG, or PNG from older results), or None and why it is missing."""
    if vision is None:
        return None, None
    encoded = vision.get("heatmap_base64")
    if not isinstance(encoded, str) or not encoded:
        return None, "the vision stage returned no heatmap"
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, "the heatmap is not valid base64"
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        return None, "the heatmap is not a JPEG or PNG image"
    return data, None


def _entities(nlp: Mapping[str, Any] | None) -> tuple[Entity, ...]:
    groups = _mapping(nlp.get("entities")) if nlp else None
    if groups is None:
        return ()
    found: list[Entity] = []
    categories = list(ENTITY_CATEGORIES) + sorted(set(groups) - set(ENTITY_CATEGORIES))
    for category in categories:
        items = groups.get(category)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping) and _text(item.get("text")):
                found.append(
                    Entity(
                        category=category,
                        text=str(item["text"]),
                        negated=bool(item.get("negated", False)),
                        uncertain=bool(item.get("uncertain", False)),
                    )
                )
    return tuple(found)


def _provenance(result: Mapping[str, Any], vision: Mapping[str, Any] | None) -> Provenance:
    prov = _mapping(result.get("provenance")) or {}
    models_raw = _mapping(prov.get("models")) or {}
    models = tuple(
        ModelInfo(
            role=str(role),
            name=str(info.get("name") or "unknown"),
            version=str(info.get("version") or "unknown"),
            sha256=str(info.get("sha256") or "unknown"),
        )
        for role, info in sorted(models_raw.items())
        if isinstance(info, Mapping)
    )
    threshold = as_float(prov.get("threshold"))
    if threshold is None and vision is not None:
        threshold = as_float(vision.get("threshold"))
    image = _mapping(result.get("image")) or {}
    width, height = as_float(image.get("width")), as_float(image.get("height"))
    desc = " ".join(
        p
        for p in (
            _text(image.get("format")),
            f"{width:.0f}\u00d7{height:.0f} px" if width and height else None,
        )
        if p
    )
    return Provenance(
        image_sha256=_text(prov.get("image_sha256")),
        image_desc=desc or None,
        models=models,
        threshold=threshold,
        code_version=_text(prov.get("code_version")),
    )


def _final_risk(vision: Mapping[str, Any] | None, fusion: Mapping[str, Any] | None) -> str | None:
    for part in (fusion, vision):
        if part is None:
            continue
        risk = part.get("final_risk") if part is fusion else part.get("risk_level")
        if isinstance(risk, str) and risk:
            return risk.upper()
    return None


def fmt(value: Any, digits: int = 2) -> str:
    """A number for people, or an en dash when absent."""
    number = as_float(value)
    return "\u2013" if number is None else f"{number:.{digits}f}"


def _conclusion(
    vision: Mapping[str, Any] | None,
    nlp: Mapping[str, Any] | None,
    fusion: Mapping[str, Any] | None,
    entities: tuple[Entity, ...],
    missing: dict[str, str],
    final_risk: str | None,
) -> str:
    sentences: list[str] = []
    if vision is not None:
        sentences.append(
            f"Anomaly score {fmt(vision.get('anomaly_score'), 1)}/100 "
            f"(threshold {fmt(vision.get('threshold'), 1)}): "
            f"{str(vision.get('risk_level') or 'unknown').upper()} image risk."
        )
    if nlp is not None:
        primary = _text(nlp.get("primary_diagnosis"))
        if primary:
            sentences.append(
                f"Clinical text suggests {primary} "
                f"(confidence {fmt(nlp.get('diagnosis_confidence'))})."
            )
        else:
            sentences.append("Clinical text names no leading condition.")
        negated = [e.text for e in entities if e.negated]
        if negated:
            sentences.append("Negated in the text: " + ", ".join(negated) + ".")
    if fusion is not None:
        sentences.append(
            f"Image-text alignment {fusion.get('alignment') or 'unknown'} "
            f"(similarity {fmt(fusion.get('image_text_similarity'))})"
            + ("; the sources disagree." if fusion.get("disagreement") else ".")
        )
    for part, reason in missing.items():
        sentences.append(f"{PART_LABELS[part]} {not_available(reason)}.")
    if final_risk:
        sentences.append(f"Overall risk: {final_risk}.")
    return " ".join(sentences)


def _recommendations(
    result: Mapping[str, Any],
    fusion: Mapping[str, Any] | None,
    missing: dict[str, str],
    final_risk: str | None,
) -> tuple[str, ...]:
    given = result.get("recommendations")
    if isinstance(given, list) and all(isinstance(r, str) for r in given) and given:
        return tuple(given)
    recs: list[str] = []
    if final_risk == "HIGH":
        recs.append("Prioritise review of this study by a radiologist.")
    elif final_risk == "MODERATE":
        recs.append(
            "Review by a radiologist in the routine worklist; correlate with the clinical history."
        )
    elif final_risk == "LOW":
        recs.append(
            "No anomaly flagged above the threshold; report through the standard workflow. "
            "A low score does not exclude disease."
        )
    else:
        recs.append("No risk level could be computed: review the study manually.")
    if fusion is not None and (fusion.get("disagreement") or fusion.get("alignment") == "conflict"):
        recs.append("Image and clinical-text findings disagree: review both before acting.")
    if missing:
        parts = ", ".join(PART_LABELS[p].lower() for p in missing)
        recs.append(
            f"Incomplete analysis ({parts} missing): do not read a missing part as a normal "
            "finding; re-run the analysis or review manually."
        )
    recs.append("Confirm every finding clinically before acting on it.")
    return tuple(recs)


def build_content(result: Mapping[str, Any]) -> ReportContent:
    """Read an analysis result into the content every report format shows."""
    session_id = _text(result.get("session_id"))
    if session_id is None:
        raise ValueError("the analysis result has no session_id")
    status = str(result.get("overall_status") or "UNKNOWN").upper()
    raw_warnings = result.get("warnings")
    warnings = tuple(str(w) for w in (raw_warnings if isinstance(raw_warnings, list) else []) if w)
    vision = _mapping(result.get("vision"))
    nlp = _mapping(result.get("nlp"))
    fusion = _mapping(result.get("fusion"))
    parts = {"vision": vision, "nlp": nlp, "fusion": fusion}
    # A failed analysis often records one error for everything; each part then shows it.
    fallback = f"the analysis failed: {warnings[0]}" if status == "FAILED" and warnings else None
    missing = {p: missing_reason(warnings, p, fallback) for p in PARTS if parts[p] is None}
    heatmap_png, heatmap_missing = decode_heatmap(vision)
    if vision is None:
        heatmap_missing = missing["vision"]
    entities = _entities(nlp)
    final_risk = _final_risk(vision, fusion)
    raw_timings = _mapping(result.get("timings")) or {}
    timings = {
        str(k): v for k, v in ((k, as_float(v)) for k, v in raw_timings.items()) if v is not None
    }
    return ReportContent(
        session_id=session_id,
        task_id=_text(result.get("task_id")),
        patient_ref=_text(result.get("patient_ref")),
        created_at=parse_time(result.get("created_at")),
        completed_at=parse_time(result.get("completed_at")),
        status=status,
        vision=vision,
        nlp=nlp,
        fusion=fusion,
        missing=missing,
        heatmap_png=heatmap_png,
        heatmap_missing=heatmap_missing,
        entities=entities,
        final_risk=final_risk,
        conclusion=_conclusion(vision, nlp, fusion, entities, missing, final_risk),
        recommendations=_recommendations(result, fusion, missing, final_risk),
        narrative=str(result.get("report_text") or "").strip(),
        warnings=warnings,
        provenance=_provenance(result, vision),
        timings=timings,
    )
