"""RAG fixtures: a small real corpus slice (PubMed abstracts + MedQuAD), built once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from backend.contract import load_result
from backend.ml.embeddings import MiniLMEmbedder, load_minilm
from backend.ml.rag import Retriever, build_corpus, open_retriever

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("MEDSIGHT_SHARED_DATA", REPO.parent / "shared" / "data"))
PUBMED = SHARED_DATA / "pubmed"
MEDQUAD_FOCI = ("Pneumonia", "COPD", "Asthma", "Pulmonary Embolism")

# A realistic analysis result (the contract GET /result returns), no identifiers.
ANALYSIS = load_result(
    {
        "schema_version": 2,
        "session_id": "s-1",
        "overall_status": "COMPLETE",
        "stages": {"input": "ok", "vision": "ok", "nlp": "ok", "fusion": "ok", "report": "ok"},
        "vision": {
            "anomaly_score": 71.4,
            "risk_level": "HIGH",
            "threshold": 55.0,
            "components": {"vae": {"value": 68.2, "z": 1.1}, "vit": {"value": 74.6, "z": 1.4}},
            "model_confidence": 0.62,
            "top_regions": [{"x": 312, "y": 410, "width": 96, "height": 80, "confidence": 0.8}],
            "heatmap_base64": "data:image/png;base64,iVBORw0KGgo=",
        },
        "nlp": {
            "entities": {
                "symptoms": [
                    {"text": "productive cough", "start": 0, "end": 16},
                    {"text": "fever", "start": 21, "end": 26},
                    {"text": "chest pain", "start": 31, "end": 41, "negated": True},
                ],
                "diseases": [],
            },
            "primary_diagnosis": "pneumonia",
            "differential": [{"disease": "pneumonia", "confidence": 0.61}],
        },
        "fusion": {
            "alignment": "strong",
            "image_text_similarity": 0.58,
            "final_risk": "HIGH",
            "disagreement": False,
        },
    }
)


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="session")
def pubmed_dir() -> Path:
    if not (PUBMED / "abstracts.jsonl").is_file():
        pytest.skip(f"shared data not available: {PUBMED}")
    return PUBMED


@pytest.fixture(scope="session")
def slice_dir(pubmed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 pulmonary question gold abstracts + 4 others, and 8 MedQuAD lung Q&A pairs."""
    return make_slice(pubmed_dir, tmp_path_factory.mktemp("pubmed-slice"))


def make_slice(pubmed_dir: Path, out: Path) -> Path:
    """The test corpus slice (also used by bench/local_llm.py) written to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    questions = _read(pubmed_dir / "questions.jsonl")
    pulmonary = [q for q in questions if q["pulmonary"]][:10]
    others = [q for q in questions if not q["pulmonary"]][:4]
    chosen = pulmonary + others
    gold = {q["gold_pmid"] for q in chosen}
    abstracts = [a for a in _read(pubmed_dir / "abstracts.jsonl") if a["pmid"] in gold]
    medquad: list[dict[str, Any]] = []
    for focus in MEDQUAD_FOCI:
        medquad += [r for r in _read(pubmed_dir / "medquad_lung.jsonl") if r["focus"] == focus][:2]
    _write(out / "abstracts.jsonl", abstracts)
    _write(out / "medquad_lung.jsonl", medquad)
    _write(out / "questions.jsonl", chosen)
    return out


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return load_minilm()


@pytest.fixture(scope="session")
def built_corpus(
    slice_dir: Path, embedder: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], list[tuple[int, int]]]:
    persist = tmp_path_factory.mktemp("chroma")
    calls: list[tuple[int, int]] = []
    stats = build_corpus(
        slice_dir, persist, embedder, progress=lambda done, total: calls.append((done, total))
    )
    return persist, stats, calls


@pytest.fixture(scope="session")
def retriever(
    built_corpus: tuple[Path, dict[str, Any], list[tuple[int, int]]], embedder: MiniLMEmbedder
) -> Retriever:
    return open_retriever(built_corpus[0], embedder)
