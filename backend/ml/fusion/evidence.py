"""Text evidence for chest findings, read from an NLP result."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.ml.nlp.types import NLPResult

# Chest/respiratory symptoms (canonical names of the symptom vocabulary) and their weight as
# evidence that a chest image should show something. Non-specific ones weigh less.
RESPIRATORY_WEIGHTS: dict[str, float] = {
    "dyspnea": 0.3,
    "orthopnea": 0.3,
    "tachypnea": 0.3,
    "hemoptysis": 0.35,
    "pleuritic chest pain": 0.3,
    "productive cough": 0.3,
    "chronic cough": 0.25,
    "cough": 0.2,
    "dry cough": 0.2,
    "wheezing": 0.2,
    "chest pain": 0.2,
    "chest tightness": 0.15,
    "sputum": 0.2,
    "frothy sputum": 0.3,
    "cyanosis": 0.3,
    "hypoxemia": 0.35,
    "whoop": 0.2,
    "fever": 0.1,
    "chills": 0.05,
    "night sweats": 0.1,
    "weight loss": 0.05,
}
NAMED_DISEASE_WEIGHT = 0.5
RANKING_WEIGHT = 0.4
DENIAL_WEIGHT = 0.2


def _noisy_or(weights: list[float]) -> float:
    p = 1.0
    for w in weights:
        p *= 1.0 - max(0.0, min(1.0, w))
    return 1.0 - p


@dataclass(frozen=True)
class TextEvidence:
    """How strongly the text points to a chest abnormality (support) or away from it (denial)."""

    support: float
    denial: float
    items: list[str] = field(default_factory=list)


def text_evidence(nlp: NLPResult, pulmonary_names: frozenset[str]) -> TextEvidence:
    """Noisy-OR of affirmed respiratory symptoms, named chest diseases and a pulmonary ranking.

    ``pulmonary_names`` are lower-case names/labels of chest conditions, used to recognise a
    disease entity ("pneumonia") as chest evidence.
    """
    support: list[float] = []
    denial: list[float] = []
    items: list[str] = []
    for e in nlp.entities.get("symptoms", []):
        w = RESPIRATORY_WEIGHTS.get(e.concept or "", 0.0)
        if w == 0.0 or e.historical or e.family:
            continue
        if e.negated:
            denial.append(DENIAL_WEIGHT)
            items.append(f"denied {e.concept}")
        elif e.uncertain:
            support.append(w / 2)
            items.append(f"possible {e.concept}")
        else:
            support.append(w)
            items.append(e.concept or e.text)
    for e in nlp.entities.get("diseases", []):
        if e.text.lower() not in pulmonary_names or e.historical or e.family:
            continue
        if e.negated:
            denial.append(NAMED_DISEASE_WEIGHT)
            items.append(f"denied {e.text}")
        else:
            support.append(NAMED_DISEASE_WEIGHT / (2 if e.uncertain else 1))
            items.append(("possible " if e.uncertain else "") + e.text)
    if nlp.differential:
        top = nlp.differential[0]
        # A ranking is only a weak pointer: it always names something, even for vague text.
        if top.get("group") == "pulmonary" and support:
            support.append(RANKING_WEIGHT * float(top.get("confidence", 0.0)))
            items.append(f"ranked {top.get('condition')}")
    return TextEvidence(_noisy_or(support), _noisy_or(denial), items)
