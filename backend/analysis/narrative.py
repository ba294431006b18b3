"""Stage 6: a plain-language narrative built from what the earlier stages produced."""

from __future__ import annotations

from backend.analysis.context import PipelineContext
from backend.contract import DISCLAIMER, NlpFindings, RiskLevel

_RISK_TEXT = {
    RiskLevel.LOW: "within the range the model saw in normal chest X-rays",
    RiskLevel.MEDIUM: "somewhat outside the normal range; review is advised",
    RiskLevel.HIGH: "well outside the normal range; prompt review by a radiologist is advised",
}

_NEXT_STEPS = {
    RiskLevel.HIGH: "Prioritise this study for radiologist review and correlate with the "
    "clinical picture.",
    RiskLevel.MEDIUM: "Have the study reviewed and correlate with symptoms and examination.",
    RiskLevel.LOW: "No image finding was flagged; clinical judgement still applies if symptoms "
    "persist.",
}


def build_narrative(ctx: PipelineContext) -> str:
    """Compose the report text; every part that is missing is said to be missing."""
    parts: list[str] = []
    vision = ctx.vision
    if vision is not None:
        risk = vision.risk_level
        parts.append(
            f"Image: anomaly score {vision.anomaly_score:.1f}/100 "
            f"(decision threshold {vision.threshold:.1f}); risk {risk}, {_RISK_TEXT[risk]}."
        )
        if vision.top_regions:
            top = vision.top_regions[0]
            parts.append(
                f"The heatmap highlights {len(vision.top_regions)} region(s); the strongest is "
                f"at x={top.x:.0f}, y={top.y:.0f} ({top.width:.0f}x{top.height:.0f} px)."
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
            top3 = ", ".join(f"{d.disease} ({d.confidence:.0%})" for d in nlp.differential[:3])
            parts.append(f"Text-based differential (not a diagnosis): {top3}.")
    elif ctx.input.symptoms:
        parts.append("Symptoms: the text could not be analysed.")
    fusion = ctx.fusion
    final_risk: RiskLevel | None = None
    if fusion is not None:
        parts.append(
            f"Image and symptoms agreement: {fusion.alignment} "
            f"({fusion.image_text_similarity:.2f}); combined risk {fusion.final_risk}."
        )
        if fusion.disagreement:
            parts.append("The image and the symptoms point in different directions: review both.")
        final_risk = fusion.final_risk
    elif vision is not None:
        final_risk = vision.risk_level
    if final_risk is not None:
        parts.append("Next step: " + _NEXT_STEPS[final_risk])
    if ctx.warnings:
        parts.append("Notes: " + "; ".join(ctx.warnings) + ".")
    parts.append(DISCLAIMER)
    return " ".join(parts)


def _entity_texts(nlp: NlpFindings, *, negated: bool) -> list[str]:
    seen: list[str] = []
    for entity in [*nlp.entities.symptoms, *nlp.entities.diseases]:
        text = entity.text.lower()
        if entity.negated == negated and text not in seen:
            seen.append(text)
    return seen[:10]
