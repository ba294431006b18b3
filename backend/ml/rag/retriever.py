"""Hybrid retrieval: dense MiniLM similarity (Chroma HNSW or exact) fused with BM25.

Ranking is per document: a document's dense score is its best chunk's cosine, its BM25 score is
over its whole text, and the two are fused. The default is a convex combination of min-max
normalised scores (weight 0.5 each), which beat reciprocal-rank fusion on PubMedQA (R@1 0.985
vs 0.979; RRF's rank sums also tie often at the top). The passage returned for a document is
its chunk closest to the query.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from backend.ml.embeddings import MiniLMEmbedder
from backend.ml.rag.bm25 import BM25Index
from backend.ml.rag.corpus import chunk_from_record, get_collection, open_chroma
from backend.ml.rag.types import Chunk, Passage

logger = logging.getLogger(__name__)

Fusion = Literal["rrf", "dense", "bm25", "convex"]
RRF_K = 60  # the constant from Cormack et al. (2009); larger flattens the top ranks


class Retriever:
    """Searches a fixed set of chunks; build with `open_retriever` or `Retriever.from_arrays`."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        embeddings: npt.NDArray[np.float32],
        embedder: MiniLMEmbedder,
        *,
        collection: Any | None = None,
        fusion: Fusion = "convex",
        candidates: int = 50,
        bm25_titles: bool = True,
        convex_alpha: float = 0.5,
    ) -> None:
        if len(chunks) != len(embeddings):
            raise ValueError("one embedding per chunk is required")
        # Group chunks by document, keeping each document's chunks contiguous and in order.
        order = sorted(range(len(chunks)), key=lambda i: (chunks[i].doc_id, chunks[i].chunk_id))
        self.chunks = [chunks[i] for i in order]
        self.embeddings = np.ascontiguousarray(embeddings[order], dtype=np.float32)
        self.embedder = embedder
        self.collection = collection
        self.fusion: Fusion = fusion
        self.candidates = candidates
        self.convex_alpha = convex_alpha
        self._chunk_index = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        starts = [0]
        for i in range(1, len(self.chunks)):
            if self.chunks[i].doc_id != self.chunks[i - 1].doc_id:
                starts.append(i)
        self._doc_starts = np.asarray(starts, dtype=np.int64)
        self._chunk_doc = np.repeat(
            np.arange(len(starts)), np.diff(np.append(self._doc_starts, len(self.chunks)))
        )
        self.doc_ids = [self.chunks[s].doc_id for s in starts]
        doc_texts: list[str] = []
        for d, s in enumerate(starts):
            end = starts[d + 1] if d + 1 < len(starts) else len(self.chunks)
            body = " ".join(c.text for c in self.chunks[s:end])
            title = self.chunks[s].title if bm25_titles else ""
            doc_texts.append(f"{title} {body}".strip())
        self.bm25 = BM25Index(doc_texts)

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    # --- scoring ------------------------------------------------------------------------
    def _dense_chunk_scores(self, vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self.collection is None:
            return self.embeddings @ vector
        # HNSW search in Chroma; chunks it did not return get -1 (never ranked above a hit).
        n = min(self.candidates * 2, len(self.chunks))
        result = self.collection.query(
            query_embeddings=[vector.tolist()], n_results=n, include=["distances"]
        )
        scores = np.full(len(self.chunks), -1.0, dtype=np.float32)
        for cid, dist in zip(result["ids"][0], result["distances"][0], strict=True):
            i = self._chunk_index.get(cid)
            if i is not None:
                scores[i] = 1.0 - float(dist)  # cosine distance -> similarity
        return scores

    def _doc_dense(self, chunk_scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.maximum.reduceat(chunk_scores, self._doc_starts)

    def rank_documents(
        self, query: str, k: int, vector: npt.NDArray[np.float32] | None = None
    ) -> list[tuple[int, float, float, float]]:
        """Top `k` documents as (doc index, fused score, dense cosine, BM25 score).

        `vector` is the query's embedding when the caller has batch-encoded its queries.
        """
        if vector is None:
            vector = self.embedder.encode_query(query)
        chunk_scores = self._dense_chunk_scores(vector)
        dense = self._doc_dense(chunk_scores)
        bm25 = self.bm25.scores(query)
        return self._fuse(dense, bm25, k)

    def _fuse(
        self, dense: npt.NDArray[np.float32], bm25: npt.NDArray[np.float64], k: int
    ) -> list[tuple[int, float, float, float]]:
        d = dense.astype(np.float64)
        if self.fusion == "dense":
            fused = d
        elif self.fusion == "bm25":
            fused = bm25
        elif self.fusion == "rrf":
            # Fusion over the full rankings: a document far down one list still gets that
            # list's (small) vote, which beats cutting each list at a fixed depth.
            fused = 1.0 / (RRF_K + _ranks(d)) + 1.0 / (RRF_K + _ranks(bm25))
        else:  # convex: min-max normalised scores
            a = self.convex_alpha
            fused = a * _minmax(d) + (1 - a) * _minmax(bm25)
        best = _top(fused, min(k, self.n_docs))
        return [(i, float(fused[i]), float(dense[i]), float(bm25[i])) for i in best]

    # --- the public face ----------------------------------------------------------------
    def search(self, query: str, k: int = 5) -> list[Passage]:
        """The `k` best passages (one per document), best first."""
        if not query.strip() or not self.chunks:
            return []
        vector = self.embedder.encode_query(query)
        chunk_scores = self._dense_chunk_scores(vector)
        dense = self._doc_dense(chunk_scores)
        bm25 = self.bm25.scores(query)
        passages: list[Passage] = []
        for d, fused, _sim, bm in self._fuse(dense, bm25, k):
            start = int(self._doc_starts[d])
            end = int(self._doc_starts[d + 1]) if d + 1 < self.n_docs else len(self.chunks)
            # The document's chunk nearest the query (exact cosine from the stored vectors).
            local = self.embeddings[start:end] @ vector
            best = start + int(np.argmax(local))
            chunk = self.chunks[best]
            passages.append(
                Passage(
                    pmid=chunk.pmid,
                    title=chunk.title,
                    text=chunk.text,
                    source=chunk.source,
                    score=round(fused, 6),
                    similarity=round(float(local.max()), 4),
                    bm25=round(bm, 3),
                    chunk_id=chunk.chunk_id,
                    doc_id=chunk.doc_id,
                    url=chunk.url,
                )
            )
        return passages


def _top(scores: npt.NDArray[np.float64], k: int) -> list[int]:
    if k <= 0:
        return []
    idx = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in idx[np.argsort(-scores[idx], kind="stable")]]


def _ranks(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based rank of every entry (best = 1; ties broken by index)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def _minmax(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def open_retriever(
    persist_dir: Path,
    embedder: MiniLMEmbedder,
    chroma_url: str | None = None,
    *,
    fusion: Fusion = "convex",
    exact: bool = True,
) -> Retriever:
    """Load the built collection into a Retriever (BM25 is rebuilt in memory, about a second).

    By default every chunk is scored exactly with one matrix product over the vectors stored
    in Chroma (about a millisecond for this corpus); `exact=False` asks Chroma's HNSW index
    instead, for collections too large to hold in memory.
    """
    client = open_chroma(persist_dir, chroma_url)
    collection = get_collection(client, embedder, create=False)
    got = collection.get(include=["documents", "metadatas", "embeddings"])
    chunks = [
        chunk_from_record(cid, doc or "", meta or {})
        for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
    ]
    embeddings = np.asarray(got["embeddings"], dtype=np.float32).reshape(len(chunks), -1)
    logger.info("retriever: %d chunks loaded", len(chunks))
    return Retriever(
        chunks, embeddings, embedder, collection=None if exact else collection, fusion=fusion
    )
