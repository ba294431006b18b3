"""Okapi BM25 over a sparse term-document matrix (scores all documents in about a millisecond)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import sparse

from backend.ml.rag.text import bm25_tokens


class BM25Index:
    """BM25 with Lucene's non-negative idf; term weights are precomputed per document."""

    def __init__(self, texts: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        lengths = np.zeros(len(texts), dtype=np.float64)
        for d, text in enumerate(texts):
            counts: dict[int, int] = {}
            tokens = bm25_tokens(text)
            lengths[d] = len(tokens)
            for tok in tokens:
                t = vocab.setdefault(tok, len(vocab))
                counts[t] = counts.get(t, 0) + 1
            rows.extend([d] * len(counts))
            cols.extend(counts.keys())
            vals.extend(counts.values())
        self.vocab = vocab
        n_docs = len(texts)
        tf = sparse.csr_matrix(
            (np.asarray(vals, dtype=np.float64), (rows, cols)), shape=(n_docs, len(vocab))
        )
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=len(vocab))
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        avgdl = float(lengths.mean()) if n_docs else 0.0
        norm = k1 * (1.0 - b + b * lengths / max(avgdl, 1e-9))
        tf_coo = tf.tocoo()
        weights = idf[tf_coo.col] * tf_coo.data * (k1 + 1.0) / (tf_coo.data + norm[tf_coo.row])
        self._weights = sparse.csc_matrix(
            (weights, (tf_coo.row, tf_coo.col)), shape=(n_docs, len(vocab))
        )
        self.n_docs = n_docs

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """BM25 score of every document for `query` (repeated query terms count once)."""
        ids = sorted({self.vocab[t] for t in bm25_tokens(query) if t in self.vocab})
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float64)
        return np.asarray(self._weights[:, ids].sum(axis=1)).ravel()

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """The `k` best (document index, score) pairs with a positive score, best first."""
        s = self.scores(query)
        k = min(k, self.n_docs)
        if k <= 0:
            return []
        idx = np.argpartition(-s, k - 1)[:k]
        idx = idx[np.argsort(-s[idx], kind="stable")]
        return [(int(i), float(s[i])) for i in idx if s[i] > 0]
