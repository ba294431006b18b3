"""The shipped NLP stage end to end: trained NER + rules + ConText + MiniLM ranking."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backend.ml.nlp.pipeline import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "metadata.json").is_file(), reason="shipped NER model missing"
)


@pytest.fixture(scope="module")
def nlp() -> Any:
    """Shipped NER + rules + ConText, lexical ranking (MiniLM ranking is tested below)."""
    from backend.ml.nlp import load_clinical_nlp

    return load_clinical_nlp(embedder=None)


def test_shipped_model_is_small_and_described() -> None:
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 50 * 1024 * 1024
    meta = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())
    assert len(meta["data"]["sha256"]) == 64
    assert meta["metrics"]["bc5cdr"]["test"]["micro_f1"] > 0.5


def test_clinical_note(nlp: Any) -> None:
    text = (
        "58-year-old smoker with productive cough, fever and pleuritic chest pain for 5 days. "
        "Denies hemoptysis. Right lower lobe crackles. Started on amoxicillin. "
        "History of hypertension treated with lisinopril."
    )
    res = nlp.analyze(text)
    d = res.to_dict()
    assert json.dumps(d)
    syms = {e.concept: e for e in res.entities["symptoms"]}
    assert "fever" in syms and not syms["fever"].negated
    assert syms["hemoptysis"].negated
    meds = {e.text.lower() for e in res.entities["medications"]}
    assert {"amoxicillin", "lisinopril"} <= meds
    assert any(e.text.lower() == "hypertension" for e in res.entities["diseases"])
    assert res.primary_diagnosis == "Pneumonia"
    assert 0 < res.diagnosis_confidence <= 1
    assert len(res.differential) == 5
    for e in (e for group in res.entities.values() for e in group):
        assert text[e.start : e.end] == e.text


def test_ner_finds_entities_outside_the_vocabulary(nlp: Any) -> None:
    text = "Cisplatin-induced nephrotoxicity was seen in the left kidney."
    res = nlp.analyze(text)
    assert any("cisplatin" in e.text.lower() for e in res.entities["medications"])
    assert any("nephrotoxicity" in e.text.lower() for e in res.entities["diseases"])
    assert any("kidney" in e.text.lower() for e in res.entities["anatomy"])


def test_empty_text(nlp: Any) -> None:
    res = nlp.analyze("")
    assert res.primary_diagnosis is None
    assert res.differential == []
    assert not any(res.entities.values())


def test_minilm_ranking_on_a_few_profiles(extractor: Any) -> None:
    """The embedding ranker with the offline MiniLM (few profiles keep the test fast)."""
    from backend.ml.nlp import load_minilm_embedder
    from backend.ml.nlp.conditions import load_profiles
    from backend.ml.nlp.ranking import ConditionRanker

    keep = {"pneumonia", "common_cold", "uti", "migraine", "acne", "pulmonary_embolism"}
    profiles = [p for p in load_profiles() if p.id in keep]
    ranker = ConditionRanker(profiles, extractor.symptoms, load_minilm_embedder())
    cases = {
        "pulmonary_embolism": "After a long flight my calf swelled up, and now I suddenly can't "
        "catch my breath and my heart is racing.",
        "migraine": "A pounding headache on one side of my head, light hurts my eyes and I feel "
        "sick.",
    }
    for expected, text in cases.items():
        ranked = ranker.rank(text, extractor.extract(text))
        assert ranked[0].profile.id == expected, [(r.profile.id, r.score) for r in ranked]
        assert ranker.method == "embedding"
