"""Image–text fusion on agreement, conflict and missing-stage cases."""

from __future__ import annotations

import pytest

from backend.ml.fusion import VisionEvidence, fuse
from backend.ml.nlp.types import Entity, NLPResult, empty_groups


def _sym(concept: str, negated: bool = False) -> Entity:
    return Entity(concept, 0, len(concept), "symptom", negated, False, False, False, concept)


def _nlp(*symptoms: Entity, diseases: tuple[Entity, ...] = (), top: str | None = None) -> NLPResult:
    groups = empty_groups()
    groups["symptoms"] = list(symptoms)
    groups["diseases"] = list(diseases)
    diff = [{"condition": top, "confidence": 0.6, "group": "pulmonary"}] if top else []
    return NLPResult(groups, top, 0.6 if top else 0.0, diff)


ABNORMAL = VisionEvidence(anomaly_score=85, threshold=50, risk_level="HIGH")
NORMAL = VisionEvidence(anomaly_score=15, threshold=50, risk_level="LOW")
PNEUMONIA_TEXT = _nlp(
    _sym("fever"), _sym("productive cough"), _sym("dyspnea"), _sym("pleuritic chest pain"),
    top="Pneumonia",
)  # fmt: skip


def test_abnormal_image_and_chest_symptoms_agree_strongly() -> None:
    r = fuse(ABNORMAL, PNEUMONIA_TEXT)
    assert r.alignment == "strong"
    assert r.image_text_similarity >= 0.75
    assert r.final_risk == "HIGH"
    assert not r.disagreement


def test_normal_image_and_no_symptoms_agree() -> None:
    r = fuse(NORMAL, _nlp())
    assert r.alignment == "strong"
    assert r.final_risk == "LOW"
    assert not r.disagreement


def test_abnormal_image_but_text_points_nowhere_is_flagged() -> None:
    r = fuse(ABNORMAL, _nlp(_sym("itching")))
    assert r.disagreement
    assert r.alignment == "conflict"
    assert r.final_risk in {"MEDIUM", "HIGH"}  # text never talks a HIGH image down to LOW
    assert "review" in r.explanation


def test_normal_image_but_strong_chest_text_is_flagged() -> None:
    r = fuse(NORMAL, PNEUMONIA_TEXT)
    assert r.disagreement
    assert r.alignment in {"weak", "conflict"}
    assert r.final_risk == "MEDIUM"


def test_denied_symptoms_lower_text_support() -> None:
    affirmed = fuse(ABNORMAL, _nlp(_sym("cough"), _sym("fever")))
    denied = fuse(ABNORMAL, _nlp(_sym("cough", True), _sym("fever", True)))
    assert denied.final_score < affirmed.final_score
    assert denied.image_text_similarity < affirmed.image_text_similarity


def test_named_chest_disease_counts_and_negation_respected() -> None:
    pneu = Entity("pneumonia", 0, 9, "disease", False, False, False, False)
    no_pneu = Entity("pneumonia", 0, 9, "disease", True, False, False, False)
    mid = VisionEvidence(60, 50, "MEDIUM")
    assert fuse(mid, _nlp(diseases=(pneu,))).final_score > fuse(mid, _nlp()).final_score
    cough = _sym("cough")
    assert (
        fuse(mid, _nlp(cough, diseases=(no_pneu,))).final_score < fuse(mid, _nlp(cough)).final_score
    )


def test_missing_text_uses_vision_only() -> None:
    r = fuse(ABNORMAL, None)
    assert (r.alignment, r.final_risk, r.disagreement) == ("weak", "HIGH", False)
    assert r.image_text_similarity == 0.0


def test_missing_image_caps_text_only_risk() -> None:
    r = fuse(None, PNEUMONIA_TEXT)
    assert r.final_risk == "MEDIUM"
    assert r.alignment == "weak"
    assert fuse(None, _nlp()).final_risk == "LOW"


def test_both_missing_and_bad_input() -> None:
    assert fuse(None, None).final_risk == "UNKNOWN"
    with pytest.raises(ValueError):
        fuse(VisionEvidence(50, 50, "SEVERE"), _nlp())
    d = fuse(NORMAL, _nlp()).to_dict()
    assert set(d) == {
        "image_text_similarity", "alignment", "final_risk", "final_score", "disagreement",
        "explanation",
    }  # fmt: skip
