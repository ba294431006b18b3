"""Zero-shot condition ranking: profiles, negation-aware evidence, confidences."""

from __future__ import annotations

from typing import Any

import pytest

from backend.ml.nlp.conditions import load_profiles, profile_for_label
from backend.ml.nlp.ranking import ConditionRanker, split_clauses
from backend.ml.nlp.types import Entity
from training.ner.ranking_head import fit_head

PULMONARY = [
    "pneumonia", "covid-19", "tuberculosis", "asthma", "copd", "bronchitis", "bronchiectasis",
    "pleural effusion", "pneumothorax", "pulmonary embolism", "pulmonary oedema", "lung cancer",
    "interstitial lung disease", "sarcoidosis", "ards", "atelectasis", "cystic fibrosis",
    "pertussis", "influenza", "common cold",
]  # fmt: skip
SYMPTOM2DISEASE_LABELS = [
    "Acne", "allergy", "Arthritis", "Bronchial Asthma", "Cervical spondylosis", "Chicken pox",
    "Common Cold", "Dengue", "Dimorphic Hemorrhoids", "drug reaction", "Fungal infection",
    "gastroesophageal reflux disease", "Hypertension", "Impetigo", "Jaundice", "Malaria",
    "Migraine", "peptic ulcer disease", "Pneumonia", "Psoriasis", "Typhoid",
    "urinary tract infection", "Varicose Veins", "diabetes",
]  # fmt: skip


def test_profiles_cover_the_required_conditions() -> None:
    profiles = load_profiles()
    assert sum(p.group == "pulmonary" for p in profiles) >= 20
    for name in PULMONARY + SYMPTOM2DISEASE_LABELS:
        assert profile_for_label(profiles, name) is not None, name
    for p in profiles:
        assert p.sources and len(p.symptoms) >= 5 and p.descriptions


@pytest.fixture(scope="module")
def ranker(extractor: Any) -> ConditionRanker:
    return ConditionRanker(load_profiles(), extractor.symptoms, embedder=None)


def _sym(concept: str, negated: bool = False) -> Entity:
    return Entity(concept, 0, len(concept), "symptom", negated, False, False, False, concept)


def test_denied_symptom_is_evidence_against(ranker: ConditionRanker) -> None:
    text = "I feel unwell"
    with_fever = ranker.rank(text, {"symptoms": [_sym("fever")]})
    no_fever = ranker.rank(text, {"symptoms": [_sym("fever", negated=True)]})
    ev_for = {r.profile.id: r.evidence for r in with_fever}
    ev_against = {r.profile.id: r.evidence for r in no_fever}
    assert ev_for["influenza"] > 0 > ev_against["influenza"]
    assert ev_against["acne"] == 0  # acne does not list fever: denying it says nothing


def test_lexical_fallback_ranks_typical_texts(extractor: Any, ranker: ConditionRanker) -> None:
    cases = {
        "pneumonia": "High fever with shaking chills, coughing up thick green phlegm, and my chest "
        "hurts when I breathe in.",
        "uti": "It burns when I pee and I need to urinate all the time; my urine is cloudy.",
        "common_cold": "I keep sneezing, my nose is runny and stuffy and I have a scratchy throat.",
    }
    for expected, text in cases.items():
        ranked = ranker.rank(text, extractor.extract(text))
        assert ranked[0].profile.id == expected, [r.profile.id for r in ranked[:3]]
        conf = [r.confidence for r in ranked]
        assert abs(sum(conf) - 1.0) < 1e-6
        assert conf[0] == max(conf)


def test_candidates_restrict_the_ranking(extractor: Any, ranker: ConditionRanker) -> None:
    text = "Persistent cough with wheezing and tight chest at night."
    ranked = ranker.rank(text, extractor.extract(text), candidates={"asthma", "acne"})
    assert {r.profile.id for r in ranked} == {"asthma", "acne"}
    assert ranked[0].profile.id == "asthma"


def test_split_clauses() -> None:
    assert split_clauses("I have a cough, and my chest hurts. No fever!") == [
        "I have a cough",
        "my chest hurts",
        "No fever",
    ]
    assert split_clauses("") == []


def test_generic_symptoms_weigh_less_than_specific_ones(ranker: ConditionRanker) -> None:
    # BM25 IDF over the profiles' key symptoms: fever/tiredness/cough are listed by many.
    for generic in ("fever", "fatigue", "cough"):
        for specific in ("wheezing", "mucoid sputum", "purulent sputum", "dysuria"):
            assert ranker.idf[generic] < ranker.idf[specific], (generic, specific)
    assert min(ranker.idf.values()) > 0


def test_sputum_colour_is_a_symptom_concept(extractor: Any) -> None:
    found = {
        e.concept
        for e in extractor.extract(
            "I bring up rusty phlegm. My sister coughs up thick white sticky mucus."
        )["symptoms"]
    }
    assert {"purulent sputum", "mucoid sputum"} <= found


def test_lay_asthma_and_pneumonia_texts(extractor: Any, ranker: ConditionRanker) -> None:
    cases = {
        "asthma": "I wheeze and my chest feels tight, I get out of breath when I exercise or "
        "in cold air, and a cough keeps me awake at night.",
        "pneumonia": "High temperature with sweats and shaking chills, my heart is racing and I "
        "cough up rusty brown phlegm; my chest hurts when I breathe in.",
    }
    cands = {"asthma", "pneumonia", "common_cold", "allergy", "typhoid", "malaria"}
    for expected, text in cases.items():
        ranked = ranker.rank(text, extractor.extract(text), candidates=cands)
        assert ranked[0].profile.id == expected, [r.profile.id for r in ranked[:3]]


class _ToyEmbedder:
    """Deterministic 8-d 'embedding': one axis per keyword, so the head has something to learn."""

    WORDS = ("itch", "rash", "cough", "fever", "pee", "burn", "head", "sneez")

    def encode(self, texts: list[str]) -> Any:
        import numpy as np

        rows = []
        for t in texts:
            v = np.array([float(w in t.lower()) for w in self.WORDS]) + 0.01
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)


def test_condition_head_fits_and_ranks(extractor: Any) -> None:
    import numpy as np

    from backend.ml.nlp.ranking import ConditionHead

    emb = _ToyEmbedder()
    profiles = [p for p in load_profiles() if p.id in {"uti", "fungal_infection", "common_cold"}]
    ids = tuple(p.id for p in profiles)
    texts = {"uti": ["it burns when I pee"], "fungal_infection": ["itchy rash"],
             "common_cold": ["sneezing and a cough"]}  # fmt: skip
    x = np.concatenate([emb.encode(texts[i]) for i in ids])
    head = fit_head(x, np.arange(len(ids)), ids, steps=200)
    head = ConditionHead(head.ids, head.weights, head.bias, weight=0.5, temperature=0.05)
    lp = head.log_proba(emb.encode(["my skin has an itchy rash"]))[0]
    assert ids[int(np.argmax(lp))] == "fungal_infection"
    assert abs(float(np.exp(lp).sum()) - 1.0) < 1e-6
    ranker = ConditionRanker(profiles, extractor.symptoms, emb, head=head)
    assert ranker.head is head
    text = "it burns when I pee"
    ranked = ranker.rank(text, extractor.extract(text))
    assert ranked[0].profile.id == "uti"
    assert abs(sum(r.confidence for r in ranked) - 1.0) < 1e-6
    # A head trained for other ids is ignored, not misapplied.
    other = ConditionRanker(profiles[:2], extractor.symptoms, emb, head=head)
    assert other.head is None


def test_shipped_head_matches_the_shipped_profiles(tmp_path: Any) -> None:
    import numpy as np

    from backend.ml.nlp.ranking import HEAD_FILE, ConditionHead

    head = ConditionHead.load()
    assert head is not None, f"missing {HEAD_FILE}"
    assert sorted(head.ids) == sorted(p.id for p in load_profiles())
    assert head.weights.shape == (384, len(head.ids)) and head.weight > 0 < head.temperature
    head.save(tmp_path / "h.npz", {"x": 1})
    again = ConditionHead.load(tmp_path / "h.npz")
    assert again is not None and again.ids == head.ids
    assert np.array_equal(again.weights, head.weights)
    assert ConditionHead.load(tmp_path / "none.npz") is None
