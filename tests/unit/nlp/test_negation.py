"""ConText negation/uncertainty on the hand-checked set of real corpus sentences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.nlp.conftest import NEGATION_SET


def _items() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NEGATION_SET.read_text().splitlines() if line.strip()]


def test_set_is_large_and_balanced() -> None:
    items = _items()
    assert len(items) >= 60
    assert sum(i["negated"] for i in items) >= 20
    assert sum(i["uncertain"] for i in items) >= 15
    assert sum(not i["negated"] and not i["uncertain"] for i in items) >= 15
    for i in items:
        assert i["text"][i["start"] : i["end"]] == i["target"]


def test_sentences_are_real_corpus_text(data_dir: Path) -> None:
    """Every sentence occurs verbatim in the shared PubMed/MedQuAD files."""
    pubmed = data_dir / "pubmed"
    corpus = "\n".join(
        json.loads(line).get("abstract", "") + "\n" + (json.loads(line).get("conclusion") or "")
        for line in (pubmed / "abstracts.jsonl").read_text().splitlines()
    )
    corpus += "\n".join(
        json.loads(line)["answer"]
        for line in (pubmed / "medquad_lung.jsonl").read_text().splitlines()
    )
    missing = [i["id"] for i in _items() if i["text"].rstrip() not in corpus]
    assert not missing


def test_accuracy_at_least_090(extractor: Any) -> None:
    items = _items()
    wrong = []
    for it in items:
        ent = extractor.assert_span(it["text"], it["start"], it["end"])
        if (ent.negated, ent.uncertain) != (it["negated"], it["uncertain"]):
            wrong.append(it["id"])
    accuracy = 1 - len(wrong) / len(items)
    assert accuracy >= 0.90, f"accuracy {accuracy:.3f}, wrong: {wrong}"


def test_patient_text_negation_and_history(extractor: Any) -> None:
    ents = extractor.extract(
        "I have had a cough for two weeks but no fever. My mother had asthma. "
        "History of tuberculosis. Possible pneumonia."
    )
    by_concept = {e.concept: e for e in ents["symptoms"]}
    assert by_concept["fever"].negated
    assert not by_concept["cough"].negated
    assert not by_concept["cough"].uncertain
