"""Retrieval: hybrid search on the slice, and the evaluation report on the slice."""

from __future__ import annotations

import json
from pathlib import Path

from backend.ml.embeddings import MiniLMEmbedder
from backend.ml.rag import Retriever
from training.rag import evaluate_retrieval


def test_search_finds_the_matching_abstract(retriever: Retriever, slice_dir: Path) -> None:
    questions = [json.loads(line) for line in (slice_dir / "questions.jsonl").open()]
    hits_at_1 = 0
    for q in questions:
        passages = retriever.search(q["question"], k=5)
        assert len(passages) == 5
        assert len({p.doc_id for p in passages}) == 5  # one passage per document
        assert passages == sorted(passages, key=lambda p: -p.score)
        hits_at_1 += passages[0].pmid == q["gold_pmid"]
    assert hits_at_1 >= len(questions) - 1


def test_medquad_answers_consumer_questions(retriever: Retriever) -> None:
    top = retriever.search("What are the symptoms of COPD?", k=3)
    assert any(p.source.startswith("MedQuAD/") and "COPD" in p.title for p in top)
    assert top[0].similarity > 0.5


def test_eval_report_on_slice(slice_dir: Path, embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    report = evaluate_retrieval(
        slice_dir / "questions.jsonl",
        slice_dir / "abstracts.jsonl",
        out,
        embedder=embedder,
        cache_dir=None,
    )
    assert json.loads(out.read_text()) == report
    assert report["questions"] == 14 and report["documents"] == 14
    for method in ("bm25", "dense", "rrf", "convex"):
        m = report["methods"][method]
        assert 0.0 <= m["recall@1"] <= m["recall@5"] <= m["recall@10"] <= 1.0
        assert 0.0 < m["mrr"] <= 1.0
    assert report["selected"] in report["methods"]
    assert report["methods"][report["selected"]]["recall@5"] >= 0.95
