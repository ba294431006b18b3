"""The parts of an analysis result the chat needs (any part may be missing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from backend.contract import AnalysisResult, NlpFindings, StageOutcome
from backend.ml.rag.types import PastAnalysis


@dataclass
class AnalysisFacts:
    """The chat's view of one analysis (vision, NLP, fusion); every field may be missing."""

    score: float | None = None  # 0-100
    threshold: float | None = None
    risk: str | None = None  # the image's risk level
    confidence: float | None = None  # 0-1
    components: dict[str, float] = field(default_factory=dict)
    regions: list[dict[str, float]] = field(default_factory=list)
    is_chest_xray: bool | None = None
    findings: list[str] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)
    differential: list[tuple[str, float]] = field(default_factory=list)
    alignment: str | None = None
    agreement: float | None = None
    final_risk: str | None = None
    disagreement: bool = False
    status: str | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def overall_risk(self) -> str | None:
        return self.final_risk or self.risk


def _component_score(parts: dict[str, float | None]) -> float | None:
    return next((parts[k] for k in ("value", "score", "z") if parts.get(k) is not None), None)


def _entities(nlp: NlpFindings, *, negated: bool) -> list[str]:
    seen: list[str] = []
    for entity in [*nlp.entities.symptoms, *nlp.entities.diseases]:
        text = entity.text.strip().lower()
        if entity.negated == negated and text not in seen:
            seen.append(text)
    return seen[:10]


def analysis_facts(analysis: AnalysisResult | None) -> AnalysisFacts | None:
    """The chat's facts of a result; None when no analysis is attached."""
    if analysis is None:
        return None
    facts = AnalysisFacts(status=analysis.overall_status.value)
    vision = analysis.vision
    if vision is not None:
        facts.score = vision.anomaly_score
        facts.threshold = vision.threshold
        facts.risk = vision.risk_level.value
        facts.confidence = vision.model_confidence
        facts.components = {
            name: score
            for name, parts in vision.components.items()
            if (score := _component_score(parts)) is not None
        }
        facts.regions = [r.model_dump() for r in vision.top_regions[:5]]
        facts.is_chest_xray = True
    else:
        facts.missing.append("vision")
        if analysis.stages.get("vision") is StageOutcome.WITHHELD:
            facts.is_chest_xray = False
    nlp = analysis.nlp
    if nlp is not None:
        facts.findings = _entities(nlp, negated=False)
        facts.denied = _entities(nlp, negated=True)
        facts.differential = [(d.disease, d.confidence) for d in nlp.differential[:3]]
    else:
        facts.missing.append("nlp")
    fusion = analysis.fusion
    if fusion is not None:
        facts.alignment = fusion.alignment.value
        facts.agreement = fusion.image_text_similarity
        facts.final_risk = fusion.final_risk.value
        facts.disagreement = fusion.disagreement
    else:
        facts.missing.append("fusion")
    return facts


def facts_text(facts: AnalysisFacts | None) -> str:
    """A compact, identifier-free summary for a language model's context."""
    if facts is None:
        return "No analysis is attached to this conversation."
    lines: list[str] = []
    if facts.score is not None:
        thr = f", decision threshold {facts.threshold:.1f}" if facts.threshold is not None else ""
        lines.append(f"Image anomaly score: {facts.score:.1f}/100{thr}; risk level {facts.risk}.")
    if facts.confidence is not None:
        lines.append(
            f"Model confidence: {facts.confidence:.2f} (0 at the threshold, 1 far from it)."
        )
    if facts.components:
        comps = ", ".join(f"{k} {v:.2f}" for k, v in facts.components.items())
        lines.append(f"Score components: {comps}.")
    if facts.regions:
        r = facts.regions[0]
        lines.append(
            f"Heatmap: {len(facts.regions)} highlighted region(s); strongest at "
            f"x={r.get('x', 0):.0f}, y={r.get('y', 0):.0f}, "
            f"{r.get('width', 0):.0f}x{r.get('height', 0):.0f} px."
        )
    if facts.is_chest_xray is False:
        lines.append("Warning: the image did not look like a typical chest X-ray.")
    if facts.findings:
        lines.append("Reported symptoms/findings: " + ", ".join(facts.findings) + ".")
    if facts.denied:
        lines.append("Denied: " + ", ".join(facts.denied) + ".")
    if facts.differential:
        lines.append(
            "Text-based differential (not a diagnosis): "
            + ", ".join(f"{c} ({p:.0%})" for c, p in facts.differential)
            + "."
        )
    if facts.final_risk:
        lines.append(
            f"Image-text agreement: {facts.alignment} ({facts.agreement or 0:.2f}); combined "
            f"risk {facts.final_risk}."
        )
    if facts.disagreement:
        lines.append("The image and the symptoms disagree.")
    if facts.missing:
        lines.append("Missing parts of the analysis: " + ", ".join(facts.missing) + ".")
    return "\n".join(lines) or "The analysis holds no usable results."


# A change in anomaly score of less than this many points (0-100) reads as "about the same".
STABLE_POINTS = 2.0


def earlier_text(earlier: Sequence[PastAnalysis], current_id: str | None = None) -> str:
    """The user's scored analyses, oldest first, with the change since the one before."""
    if not earlier:
        return "No earlier finished analyses with a score were found for this account."
    lines = [f"The user's analyses with a score ({len(earlier)}, oldest first):"]
    for a in earlier:
        mark = " (the analysis attached to this conversation)" if a.session_id == current_id else ""
        risk = f", risk level {a.risk_level}" if a.risk_level else ""
        lines.append(f"- {a.created_at:%Y-%m-%d}: anomaly score {a.anomaly_score:.1f}{risk}{mark}")
    if len(earlier) < 2:
        lines.append("There is only one analysis, so there is nothing to compare it with yet.")
        return "\n".join(lines)
    prev, last = earlier[-2], earlier[-1]
    change = last.anomaly_score - prev.anomaly_score
    if abs(change) < STABLE_POINTS:
        trend = (
            f"Between {prev.created_at:%Y-%m-%d} and {last.created_at:%Y-%m-%d} the anomaly score "
            f"stayed about the same ({prev.anomaly_score:.1f} to {last.anomaly_score:.1f})."
        )
    else:
        way = "rose" if change > 0 else "fell"
        trend = (
            f"Between {prev.created_at:%Y-%m-%d} and {last.created_at:%Y-%m-%d} the anomaly score "
            f"{way} by {abs(change):.1f} points, from {prev.anomaly_score:.1f} to "
            f"{last.anomaly_score:.1f}."
        )
    lines.append(trend)
    if prev.risk_level and last.risk_level and prev.risk_level != last.risk_level:
        lines.append(f"The risk level went from {prev.risk_level} to {last.risk_level}.")
    first = earlier[0]
    if len(earlier) > 2:
        lines.append(
            f"Over all {len(earlier)} analyses since {first.created_at:%Y-%m-%d} the score went "
            f"from {first.anomaly_score:.1f} to {last.anomaly_score:.1f}."
        )
    return "\n".join(lines)
