"""Image–text fusion: agreement between the vision score and the text evidence, final risk.

Formula (all inputs clipped to their ranges):

- image abnormality  v = sigmoid((anomaly_score - threshold) / 10), so v = 0.5 at the threshold.
- text evidence      t = support * (1 - 0.5 * denial), where support is a noisy-OR of affirmed
  chest symptoms (weights in ``evidence.RESPIRATORY_WEIGHTS``; uncertain ones at half weight),
  named chest diseases (0.5) and, when there is other support, 0.4 x the confidence of a
  pulmonary top-ranked condition; denial is a noisy-OR of explicitly negated ones (0.2 each,
  0.5 for a negated chest disease). Historical and family mentions are ignored.
- image_text_similarity = 1 - |v - t|.
- alignment: v and t on the same side of 0.5 -> "strong" if similarity >= 0.75 else "moderate";
  on different sides -> "weak" if similarity >= 0.5 else "conflict".
- final_score = 100 * (0.75 v + 0.25 t); final_risk HIGH >= 65, MEDIUM >= 35, else LOW;
  text never lowers a HIGH vision risk below MEDIUM, and a disagreement is at least MEDIUM.
- disagreement: image abnormal (v >= 0.5) while the text points nowhere (t < 0.2), or the
  text points strongly to a chest condition (t >= 0.6) while the image is normal (v < 0.5).
- a missing stage: similarity 0.0, alignment "weak", risk from the stage that ran (text alone is
  at most MEDIUM); both missing -> final_risk "UNKNOWN".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from backend.contract import RiskLevel
from backend.ml.fusion.evidence import TextEvidence, text_evidence
from backend.ml.nlp.types import NLPResult

_RISK_ORDER = {"UNKNOWN": -1, "LOW": 0, "MEDIUM": 1, "HIGH": 2}
HIGH_AT = 65.0
MEDIUM_AT = 35.0
VISION_WEIGHT = 0.75

__all__ = ["FusionResult", "VisionEvidence", "fuse", "TextEvidence", "text_evidence"]


@dataclass(frozen=True)
class VisionEvidence:
    """What the vision stage reports: anomaly score and threshold on a 0-100 scale, risk level."""

    anomaly_score: float
    threshold: float
    risk_level: str  # "LOW" | "MEDIUM" | "HIGH"

    def abnormal_probability(self) -> float:
        """Logistic map of the score's distance to the threshold (0.5 at the threshold)."""
        s = min(100.0, max(0.0, float(self.anomaly_score)))
        thr = min(100.0, max(0.0, float(self.threshold)))
        return 1.0 / (1.0 + math.exp(-(s - thr) / 10.0))


@dataclass(frozen=True)
class FusionResult:
    """Agreement of image and text and the combined risk."""

    image_text_similarity: float
    alignment: str  # "strong" | "moderate" | "weak" | "conflict"
    final_risk: str  # "LOW" | "MEDIUM" | "HIGH" | "UNKNOWN" (both stages missing)
    final_score: float  # 0-100
    disagreement: bool
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


@cache
def pulmonary_names() -> frozenset[str]:
    """Lower-case names and labels of the shipped pulmonary condition profiles."""
    from backend.ml.nlp.conditions import load_profiles

    names: set[str] = set()
    for p in load_profiles():
        if p.group == "pulmonary":
            names.add(p.name.lower())
            names.update(x.lower() for x in p.labels)
    return frozenset(names)


def _risk_from_score(score: float) -> str:
    if score >= HIGH_AT:
        return "HIGH"
    if score >= MEDIUM_AT:
        return "MEDIUM"
    return "LOW"


def _at_least(risk: str, floor: str) -> str:
    return risk if _RISK_ORDER[risk] >= _RISK_ORDER[floor] else floor


def text_strength(ev: TextEvidence) -> float:
    """t = support * (1 - 0.5 * denial)."""
    return max(0.0, min(1.0, ev.support * (1.0 - 0.5 * ev.denial)))


def fuse(vision: VisionEvidence | None, nlp: NLPResult | None) -> FusionResult:
    """Combine the vision evidence and the NLP result (either may be missing)."""
    if vision is None and nlp is None:
        return FusionResult(0.0, "weak", "UNKNOWN", 0.0, False, "no image or text result")
    ev = text_evidence(nlp, pulmonary_names()) if nlp is not None else None
    t = text_strength(ev) if ev is not None else 0.0
    what = ", ".join(ev.items) if ev and ev.items else "no chest findings in the text"
    if vision is None:
        score = round(100.0 * t * 0.6, 1)
        risk = "MEDIUM" if t >= 0.5 else "LOW"
        return FusionResult(
            0.0, "weak", risk, score, False, f"text only (t={t:.2f}: {what}); no image result"
        )
    v = vision.abnormal_probability()
    try:
        vision_risk = RiskLevel(vision.risk_level).value
    except ValueError:
        raise ValueError(
            f"risk_level must be LOW, MEDIUM or HIGH, not {vision.risk_level!r}"
        ) from None
    if ev is None:
        return FusionResult(
            0.0,
            "weak",
            vision_risk,
            round(100.0 * v, 1),
            False,
            f"image only (v={v:.2f}); no text result",
        )
    similarity = 1.0 - abs(v - t)
    same_side = (v >= 0.5) == (t >= 0.5)
    if same_side:
        alignment = "strong" if similarity >= 0.75 else "moderate"
    else:
        alignment = "weak" if similarity >= 0.5 else "conflict"
    disagreement = (v >= 0.5 and t < 0.2) or (v < 0.5 and t >= 0.6)
    score = 100.0 * (VISION_WEIGHT * v + (1.0 - VISION_WEIGHT) * t)
    risk = _risk_from_score(score)
    if vision_risk == "HIGH":
        risk = _at_least(risk, "MEDIUM")
    if disagreement:
        risk = _at_least(risk, "MEDIUM")
    if disagreement and v >= 0.5:
        note = "image abnormal but the text gives no chest findings: review"
    elif disagreement:
        note = "text points to a chest condition but the image looks normal: review"
    else:
        note = f"{alignment} agreement"
    explanation = f"{note}; image v={v:.2f} ({vision_risk}), text t={t:.2f} ({what})"
    return FusionResult(
        round(similarity, 4), alignment, risk, round(score, 1), disagreement, explanation
    )
