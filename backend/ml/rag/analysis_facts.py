"""Read the parts of an analysis result the chat needs, tolerating missing or partial parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def _map(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _component_score(value: Any) -> float | None:
    if isinstance(value, Mapping):
        for key in ("score", "normalized", "value", "calibrated", "raw"):
            if key in value and _num(value[key]) is not None:
                return _num(value[key])
        return None
    return _num(value)


def _entities(nlp: Mapping[str, Any], *, negated: bool) -> list[str]:
    groups = nlp.get("entities")
    items: list[Any] = []
    if isinstance(groups, Mapping):
        for name in ("symptoms", "diseases", "findings"):
            got = groups.get(name)
            if isinstance(got, list):
                items += got
    elif isinstance(groups, list):
        items = groups
    seen: list[str] = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("text"):
            continue
        text = str(item["text"]).strip().lower()
        if bool(item.get("negated")) == negated and text not in seen:
            seen.append(text)
    return seen[:10]


def analysis_facts(analysis: Mapping[str, Any] | None) -> AnalysisFacts | None:
    """Facts from a result JSON (the shape `GET /result` returns); None when there is none."""
    if not analysis:
        return None
    facts = AnalysisFacts(status=str(analysis.get("overall_status") or "") or None)
    vision = _map(analysis.get("vision"))
    if vision is not None:
        facts.score = _num(vision.get("anomaly_score"))
        facts.threshold = _num(vision.get("threshold"))
        facts.risk = str(vision.get("risk_level") or "") or None
        facts.confidence = _num(vision.get("model_confidence"))
        comps = _map(vision.get("components")) or {}
        facts.components = {
            str(k): s
            for k, s in ((k, _component_score(v)) for k, v in comps.items())
            if s is not None
        }
        regions = vision.get("top_regions")
        if isinstance(regions, list):
            facts.regions = [
                {k: float(v) for k, v in r.items() if _num(v) is not None}
                for r in regions[:5]
                if isinstance(r, Mapping)
            ]
        chest = vision.get("is_chest_xray")
        facts.is_chest_xray = chest if isinstance(chest, bool) else None
    else:
        facts.missing.append("vision")
    nlp = _map(analysis.get("nlp"))
    if nlp is not None:
        facts.findings = _entities(nlp, negated=False)
        facts.denied = _entities(nlp, negated=True)
        diff = nlp.get("differential")
        if isinstance(diff, list):
            for d in diff[:3]:
                if isinstance(d, Mapping) and d.get("condition"):
                    facts.differential.append(
                        (str(d["condition"]), _num(d.get("confidence")) or 0.0)
                    )
    else:
        facts.missing.append("nlp")
    fusion = _map(analysis.get("fusion"))
    if fusion is not None:
        facts.alignment = str(fusion.get("alignment") or "") or None
        facts.agreement = _num(fusion.get("image_text_similarity"))
        facts.final_risk = str(fusion.get("final_risk") or "") or None
        facts.disagreement = bool(fusion.get("disagreement"))
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
