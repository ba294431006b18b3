"""Retrieval evaluation on PubMedQA: each question's gold is its article (`gold_pmid`).

A PubMedQA question is its article's title, so abstracts are indexed WITHOUT titles (dense and
BM25 alike); otherwise retrieval is near-trivial. Dense, BM25 and the hybrids run on the same
index, chunks and query embeddings in one run, so the numbers compare directly.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backend.ml.embeddings import MiniLMEmbedder
from backend.ml.rag.corpus import VECTOR_WINDOW, chunk_documents, load_abstracts
from backend.ml.rag.retriever import Fusion, Retriever

DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "rag"
METHODS: tuple[Fusion, ...] = ("bm25", "dense", "rrf", "convex")
KS = (1, 5, 10)


def _load_questions(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def cached_encode(
    embedder: MiniLMEmbedder,
    texts: Sequence[str],
    cache_dir: Path | None,
    tag: str,
    window: int | None = None,
) -> np.ndarray:
    """Embed `texts`, reusing a cache keyed by the embedder, the window and the exact texts."""
    signature = embedder.signature_for(window or embedder.max_seq_length)
    payload = signature + "\x00" + "\x00".join(texts)
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
    path = cache_dir / f"{tag}-{digest}.npy" if cache_dir else None
    if path and path.is_file():
        return np.load(path)
    vectors = embedder.encode(list(texts), batch_size=64, max_seq_length=window)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def _metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    out = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in KS}
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n
    return {k: round(v, 4) for k, v in out.items()}


def evaluate_retrieval(
    questions: Path,
    abstracts: Path,
    out: Path,
    *,
    embedder: MiniLMEmbedder,
    cache_dir: Path | None = DEFAULT_CACHE,
    methods: Sequence[Fusion] = METHODS,
    depth: int = 100,
    limit: int | None = None,
    chunk_tokens: int | None = None,
    window: int = VECTOR_WINDOW,
) -> dict[str, Any]:
    """Recall@1/5/10 and MRR per method; writes the report to `out` and returns it.

    `limit` keeps the first N questions (for quick checks); every abstract is still indexed.
    """
    t0 = time.perf_counter()
    qs = _load_questions(questions)[: limit or None]
    docs = load_abstracts(abstracts)
    chunks = chunk_documents(docs, embedder, chunk_tokens)
    t_chunk = time.perf_counter()
    chunk_vecs = cached_encode(embedder, [c.text for c in chunks], cache_dir, "chunks", window)
    t_embed = time.perf_counter()
    query_vecs = cached_encode(embedder, [q["question"] for q in qs], cache_dir, "questions")
    retriever = Retriever(chunks, chunk_vecs, embedder, bm25_titles=False)
    doc_index = {doc_id: i for i, doc_id in enumerate(retriever.doc_ids)}
    missing = [q["qid"] for q in qs if f"pubmed-{q['gold_pmid']}" not in doc_index]
    results: dict[str, Any] = {}
    for method in methods:
        retriever.fusion = method
        ranks: list[int | None] = []
        tq = time.perf_counter()
        for q, vec in zip(qs, query_vecs, strict=True):
            gold = doc_index.get(f"pubmed-{q['gold_pmid']}")
            ranked = [d for d, *_ in retriever.rank_documents(q["question"], depth, vector=vec)]
            ranks.append(ranked.index(gold) + 1 if gold in ranked else None)
        splits = sorted({str(q.get("pubmedqa_official_split")) for q in qs})
        results[method] = {
            **_metrics(ranks),
            "by_split": {
                sp: _metrics(
                    [
                        r
                        for r, q in zip(ranks, qs, strict=True)
                        if str(q.get("pubmedqa_official_split")) == sp
                    ]
                )
                for sp in splits
            },
            "ms_per_query_excl_embedding": round(1000 * (time.perf_counter() - tq) / len(qs), 3),
        }
    hybrids = [m for m in methods if m in ("rrf", "convex")]
    best = max(hybrids, key=lambda m: (results[m]["recall@1"], results[m]["mrr"]), default=None)
    baselines = [m for m in methods if m in ("bm25", "dense")]
    hybrid_wins = best is not None and all(
        (results[best]["recall@1"], results[best]["mrr"])
        >= (results[b]["recall@1"], results[b]["mrr"])
        for b in baselines
    )
    report: dict[str, Any] = {
        "task": "PubMedQA question -> gold abstract (titles not indexed)",
        "questions": len(qs),
        "documents": len(docs),
        "chunks": len(chunks),
        "missing_gold": missing,
        "embedder": embedder.signature_for(window),
        "chunking": (
            f"sentence-aligned, <= {chunk_tokens or 'ABSTRACT_CHUNK_TOKENS'} word pieces; "
            f"vectors see the first {window}"
        ),
        "doc_score": "dense: best chunk cosine; bm25: whole abstract (Okapi, k1=1.2, b=0.75)",
        "methods": results,
        "selected": best
        if hybrid_wins
        else max(baselines, key=lambda m: (results[m]["recall@1"], results[m]["mrr"])),
        "hybrid_wins": hybrid_wins,
        "seconds": {
            "chunking": round(t_chunk - t0, 1),
            "embedding_chunks": round(t_embed - t_chunk, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
        "caveats": (
            "PubMedQA questions are article titles, so lexical overlap with the abstract is high; "
            "800 questions, one gold abstract each, 3,092 candidate abstracts. Not a measure of "
            "answer quality."
        ),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def main() -> None:  # pragma: no cover - manual entry point
    import argparse

    from backend.ml.embeddings import load_minilm

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--abstracts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--window", type=int, default=VECTOR_WINDOW)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--chunk-tokens", type=int, default=None)
    args = parser.parse_args()
    embedder = load_minilm()
    report = evaluate_retrieval(
        args.questions,
        args.abstracts,
        args.out,
        embedder=embedder,
        limit=args.limit,
        chunk_tokens=args.chunk_tokens,
        window=args.window,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
