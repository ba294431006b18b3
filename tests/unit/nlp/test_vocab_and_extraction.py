"""Symptom/medication target rules and the overlap policy, on real-style text."""

from __future__ import annotations

import json
from typing import Any

from backend.ml.nlp.conditions import load_profiles
from backend.ml.nlp.extraction import Candidate, resolve_overlaps
from backend.ml.nlp.vocab import DATA_DIR, load_medications, load_symptoms


def test_every_key_symptom_is_in_the_vocabulary() -> None:
    symptoms = load_symptoms()
    for p in load_profiles():
        for k in p.key_symptoms:
            assert k in symptoms, f"{p.id}: {k}"


def test_vocabularies_document_their_source() -> None:
    for name in ("symptoms.json", "medications.json", "conditions.json"):
        about = json.loads((DATA_DIR / name).read_text())["_about"]
        assert len(about) > 80


def test_lay_and_clinical_symptoms_are_found(extractor: Any) -> None:
    text = (
        "I've been short of breath and coughing up green phlegm; my nose keeps running. "
        "Patient reports haemoptysis and night sweats, denies chest pain."
    )
    ents = extractor.extract(text)
    concepts = {e.concept: e for e in ents["symptoms"]}
    assert {"dyspnea", "productive cough", "runny nose", "hemoptysis", "night sweats"} <= set(
        concepts
    )
    assert concepts["chest pain"].negated
    for e in ents["symptoms"]:
        assert text[e.start : e.end] == e.text


def test_medications_are_found(extractor: Any) -> None:
    ents = extractor.extract("Started on amoxicillin and a salbutamol inhaler; no aspirin.")
    meds = {e.concept: e for e in ents["medications"]}
    assert {"amoxicillin", "salbutamol"} <= set(meds)
    assert meds["aspirin"].negated
    assert "chemotherapy" in load_medications()


def test_overlap_policy_longest_then_rules() -> None:
    cands = [
        Candidate(0, 15, "disease", "ner"),
        Candidate(0, 9, "symptom", "rules", "cough"),
        Candidate(20, 25, "disease", "ner"),
        Candidate(20, 25, "symptom", "rules", "fever"),
    ]
    kept = resolve_overlaps(cands)
    assert [(c.start, c.end, c.label) for c in kept] == [(0, 15, "disease"), (20, 25, "symptom")]


def test_empty_text_gives_empty_groups(extractor: Any) -> None:
    ents = extractor.extract("   ")
    assert set(ents) == {"diseases", "symptoms", "medications", "anatomy"}
    assert not any(ents.values())


def test_lay_inability_phrases_are_complaints_not_denials(extractor: Any) -> None:
    """ "can't catch my breath" affirms dyspnoea and does not negate what follows."""

    def flags(text: str) -> dict[str, bool]:
        groups = extractor.extract(text)
        return {e.concept or e.text: e.negated for e in groups["symptoms"]}

    assert flags("I can't catch my breath and I'm tired.") == {"dyspnea": False, "fatigue": False}
    assert flags("A cough that won't go away, and fatigue.") == {
        "chronic cough": False,
        "fatigue": False,
    }
    assert flags("No fever. I can't stop coughing.") == {"fever": True, "cough": False}
    # Real denials stay denials.
    assert flags("She doesn't have a fever.") == {"fever": True}
    assert flags("He does not have chest pain and can't sleep.")["chest pain"] is True


def test_indexed_symptom_matcher_finds_what_a_full_scan_finds() -> None:
    """The first-letter index is only a speed-up: same matches as one scan per symptom."""
    from backend.ml.nlp.vocab import SymptomMatcher

    matcher = SymptomMatcher(load_symptoms())

    def full_scan(text: str) -> list[tuple[int, int, str]]:
        return sorted(
            (m.start(), m.end(), name)
            for name, rx in matcher._compiled
            for m in rx.finditer(text)
            if m.end() > m.start()
        )

    texts = [
        "Can't-stop coughing; chest pain-free? CHEST PAIN!! no fever, fever 39C, short of breath",
        "I have been coughing up green phlegm and my stomach hurts; itchy rash on my arms.",
        "Patient reports dyspnoea on exertion, haemoptysis and night sweats. Back-pain.",
        "",
    ]
    for profile in load_profiles():
        texts.extend(profile.descriptions)
    assert all(matcher.find(t) == full_scan(t) for t in texts)
    assert not matcher._anywhere  # every shipped pattern is indexed
