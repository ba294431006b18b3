"""Corpus build: chunking, metadata, idempotence, progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.ml.embeddings import MiniLMEmbedder
from backend.ml.rag import build_corpus, corpus_exists, load_documents
from backend.ml.rag.corpus import (
    COLLECTION,
    QA_CHUNK_TOKENS,
    chunk_documents,
    open_chroma,
    token_counter,
)


def test_build_reports_counts_and_progress(
    built_corpus: tuple[Path, dict[str, Any], list[tuple[int, int]]], slice_dir: Path
) -> None:
    _, stats, calls = built_corpus
    docs = load_documents(slice_dir)
    assert stats["documents"] == len(docs) == 14 + 8
    assert stats["chunks"] >= stats["documents"]
    assert stats["added"] == stats["chunks"] == stats["collection_count"]
    assert calls[0] == (0, stats["added"]) and calls[-1] == (stats["added"], stats["added"])


def test_rebuild_adds_nothing(
    built_corpus: tuple[Path, dict[str, Any], list[tuple[int, int]]],
    slice_dir: Path,
    embedder: MiniLMEmbedder,
) -> None:
    persist, first, _ = built_corpus
    again = build_corpus(slice_dir, persist, embedder)
    assert again["added"] == 0
    assert again["skipped"] == first["chunks"]
    assert again["collection_count"] == first["collection_count"]
    assert corpus_exists(persist)


def test_corpus_exists_is_false_for_an_empty_dir(tmp_path: Path) -> None:
    assert not corpus_exists(tmp_path / "nothing-here")


def test_chunks_fit_the_window_and_carry_metadata(
    built_corpus: tuple[Path, dict[str, Any], list[tuple[int, int]]],
    slice_dir: Path,
    embedder: MiniLMEmbedder,
) -> None:
    chunks = chunk_documents(load_documents(slice_dir), embedder)
    count = token_counter(embedder)
    abstracts = [c for c in chunks if c.pmid]
    qa = [c for c in chunks if not c.pmid]
    # Abstracts stay whole; long Q&A answers are cut into sentence-aligned passages.
    assert len(abstracts) == len({c.doc_id for c in abstracts}) == 14
    assert len(qa) > len({c.doc_id for c in qa})
    sizes = count([c.text for c in qa])
    assert sum(s > QA_CHUNK_TOKENS for s in sizes) <= 1  # only an over-long single sentence
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    client = open_chroma(built_corpus[0])
    got = client.get_collection(COLLECTION).get(include=["metadatas"])
    metas = got["metadatas"]
    pubmed = [m for m in metas if m["pmid"]]
    medquad = [m for m in metas if not m["pmid"]]
    assert pubmed and medquad
    assert all(m["title"] and m["source"] for m in metas)
    assert all(m["source"].startswith("MedQuAD/") and m["url"] for m in medquad)
    # The abstract title is metadata only: it is not part of the indexed text.
    first = next(c for c in chunks if c.pmid)
    assert first.title not in first.text


def test_document_ids_are_unique_across_the_whole_shared_corpus(pubmed_dir: Path) -> None:
    docs = load_documents(pubmed_dir)
    assert len({d.doc_id for d in docs}) == len(docs)
