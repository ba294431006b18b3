"""Leave-one-out check and softmax temperature of the condition ranker, from the profiles alone.

Each profile description is used as a query after removing it from its own profile; the ranker
must then find its condition among all profiles from the remaining phrases. This gives a top-1
accuracy and the temperature T minimising the negative log-likelihood of the true condition,
without touching any evaluation set. Run: ``python -m training.ner.calibrate [--rules]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.ml.nlp.conditions import ConditionProfile, load_profiles
from backend.ml.nlp.extraction import EntityExtractor
from backend.ml.nlp.ranking import LAMBDA, ConditionRanker

GRID = [0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2]


class MemoEmbedder:
    """Caches vectors per text so rebuilding rankers costs no re-encoding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, npt.NDArray[np.float32]] = {}

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Encode the texts not seen yet, return all rows."""
        miss = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if miss:
            for t, v in zip(miss, self.inner.encode(miss), strict=True):
                self.cache[t] = np.asarray(v, dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])


def leave_one_out(embedder: Any | None, *, hub_correction: bool = True) -> dict[str, Any]:
    """Top-1 accuracy and best temperature over all (profile, description) queries."""
    profiles = load_profiles()
    extractor = EntityExtractor(None)
    rows: list[tuple[list[float], int]] = []
    hits = 0
    for i, p in enumerate(profiles):
        for desc in p.descriptions:
            reduced: list[ConditionProfile] = list(profiles)
            reduced[i] = dataclasses.replace(
                p, descriptions=tuple(d for d in p.descriptions if d != desc)
            )
            ranker = ConditionRanker(
                reduced, extractor.symptoms, embedder, hub_correction=hub_correction
            )
            ranked = ranker.rank(desc, extractor.extract(desc))
            order = [r.profile.id for r in ranked]
            hits += int(order[0] == p.id)
            rows.append(([r.score for r in ranked], order.index(p.id)))
    best_t, best_nll = GRID[0], math.inf
    for t in GRID:
        nll = 0.0
        for scores, true_idx in rows:
            s = np.array(scores) / t
            m = s.max()
            nll -= s[true_idx] - (m + math.log(float(np.exp(s - m).sum())))
        nll /= len(rows)
        if nll < best_nll:
            best_t, best_nll = t, nll
    return {
        "method": "embedding" if embedder is not None else "rules",
        "hub_correction": hub_correction,
        "lambda": LAMBDA["embedding" if embedder is not None else "rules"],
        "queries": len(rows),
        "top1_accuracy": round(hits / len(rows), 4),
        "temperature": best_t,
        "nll": round(best_nll, 4),
    }


def main() -> None:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", action="store_true", help="lexical fallback, no MiniLM")
    args = parser.parse_args()
    embedder = None
    if not args.rules:
        from backend.ml.nlp.pipeline import load_minilm_embedder

        embedder = MemoEmbedder(load_minilm_embedder())
    for hub in (False, True):
        print(json.dumps(leave_one_out(embedder, hub_correction=hub)))


if __name__ == "__main__":
    main()
