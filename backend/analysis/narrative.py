"""Stage 6: a plain-language narrative built from what the earlier stages produced."""

from __future__ import annotations

from typing import Any

from backend import DISCLAIMER
from backend.analysis.context import PipelineContext

_RISK_TEXT = {
    "LOW": "within the range the model saw in normal chest X-rays",
    "MODERATE": "somewhat outside the normal range; review is advised",
    "HIGH": "well outside the normal range; prompt review by a radiologist is advised",
}

_NEXT_STEPS = {
    "HIGH": "Prioritise this study for radiologist review and correlate with the clinical picture.",
    "MODERATE": "Have the study reviewed and correlate with symptoms and examination.",
    "LOW": "No image finding was flagged; clinical judgement still applies if symptoms persist.",
}


def build_narrative(ctx: PipelineContext) -> str:
    """Compose the report text; every part that is missing is said to be missing."""
    parts: list[str] = []
    vision = ctx.vision
    if vision is not None:
        risk = str(vision.risk_level)
        parts.append(
            f"Image: anomaly score {vision.anomaly_score:.1f}/100 "
            f"(decision threshold {vision.threshold:.1f}); risk {risk}, "
            f"{_RISK_TEXT.get(risk, 'see the score')}."
        )
        regions = list(getattr(vision, "top_regions", []) or [])
        if regions:
            parts.append(
                f"The heatmap highlights {len(regions)} region(s); the strongest is at "
                f"x={regions[0]['x']:.0f}, y={regions[0]['y']:.0f} "
                f"({regions[0]['width']:.0f}x{regions[0]['height']:.0f} px)."
            )
    else:
        parts.append("Image: no anomaly score is available for this study.")
    nlp = ctx.nlp
    if nlp is not None:
        present = _entity_texts(nlp, negated=False)
        absent = _entity_texts(nlp, negated=True)
        if present:
            parts.append("Reported findings: " + ", ".join(present) + ".")
        if absent:
            parts.append("Denied: " + ", ".join(absent) + ".")
        if nlp.primary_diagnosis:
            top = ", ".join(
                f"{d['condition']} ({d['confidence']:.0%})" for d in nlp.differential[:3]
            )
            parts.append(f"Text-based differential (not a diagnosis): {top}.")
    elif ctx.input.symptoms:
        parts.append("Symptoms: the text could not be analysed.")
    fusion = ctx.fusion
    if fusion is not None:
        parts.append(
            f"Image and symptoms agreement: {fusion.alignment} "
            f"({fusion.image_text_similarity:.2f}); combined risk {fusion.final_risk}."
        )
        if fusion.disagreement:
            parts.append("The image and the symptoms point in different directions: review both.")
        final_risk = str(fusion.final_risk)
    else:
        final_risk = str(vision.risk_level) if vision is not None else ""
    if final_risk in _NEXT_STEPS:
        parts.append("Next step: " + _NEXT_STEPS[final_risk])
    if ctx.warnings:
        parts.append("Notes: " + "; ".join(ctx.warnings) + ".")
    parts.append(DISCLAIMER)
    return " ".join(parts)


def _entity_texts(nlp: Any, *, negated: bool) -> list[str]:
    seen: list[str] = []
    for group in ("symptoms", "diseases"):
        for entity in nlp.entities.get(group, []):
            text = entity.text.lower()
            if bool(entity.negated) == negated and text not in seen:
                seen.append(text)
    return seen[:10]
