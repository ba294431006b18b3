"""Dictation vocabulary: lexicon correction fixes sound-alike mishearings, leaves speech alone."""

from __future__ import annotations

import pytest

from backend.ml.speech.vocabulary import PROMPT, clinical_terms, correct, phonetic_key


@pytest.mark.parametrize(
    ("heard", "meant"),
    [
        ("I get short of breadth on the stairs", "I get short of breath on the stairs"),
        ("night swets and chils since Sunday", "night sweats and chills since Sunday"),
        ("she uses her inhailer when it is cold", "she uses her inhaler when it is cold"),
        ("coughs up green spew tum every day", "coughs up green sputum every day"),
    ],
)
def test_sound_alike_terms_are_corrected(heard: str, meant: str) -> None:
    text, corrections = correct(heard)
    assert text == meant
    assert corrections and all(c.score >= 0.78 for c in corrections)


@pytest.mark.parametrize(
    "sentence",
    [
        "I went to the store this morning",
        "I have chest tightness and a dry cough",
        "he has been wheezing at night",
        "he coughs up blood when he runs",
        "my temperature is high and I feel tired",
        "he was seeing the doctor about his back",
    ],
)
def test_ordinary_and_already_clinical_sentences_are_left_alone(sentence: str) -> None:
    assert correct(sentence) == (sentence, [])


def test_phonetic_key_merges_confusable_sounds() -> None:
    assert phonetic_key("wheezing") == phonetic_key("weesing")
    assert phonetic_key("sputum") == phonetic_key("spoo tum")
    assert phonetic_key("chest tightness") == "JSTNS"


def test_lexicon_comes_from_the_symptom_vocabulary_and_the_prompt_names_terms() -> None:
    names = {t.text for t in clinical_terms()}
    assert {"hemoptysis", "wheezing", "shortness of breath", "salbutamol"} <= names
    assert "sputum" in PROMPT and "wheezing" in PROMPT
