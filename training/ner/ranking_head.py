"""Train and check the supervised condition head on authored text only (never Symptom2Disease).

Training text per condition, all from ``backend/ml/nlp/data/conditions.json``: the profile's
symptom phrases, descriptions and first-person lay ``vignettes`` (written for MedSight from
general medical knowledge). Steps:

1. the zero-shot ranker (no head) scores every vignette with that vignette's fold removed from
   the profiles (out-of-fold);
2. 5-fold cross-validation over the vignettes (profile phrases always in training) gives
   out-of-fold head log-probabilities; the head weight ``w`` (score + w * log p) and the L2
   strength are chosen by out-of-fold top-1 accuracy over all profiles, the temperature by
   out-of-fold negative log-likelihood;
3. the head is refitted on everything and written to ``backend/ml/nlp/data/condition_head.npz``;
4. the own held-out set (``ranking_data/heldout.jsonl``, 120 authored texts written before the
   training vignettes, never trained on or tuned on) is scored with and without the head.

Run: ``python -m training.ner.ranking_head [--out report.json] [--no-save]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.ml.nlp.conditions import DEFAULT_PROFILES, profile_for_label
from backend.ml.nlp.ranking import (
    HEAD_FILE,
    ConditionHead,
    ConditionRanker,
    mean_vector,
    split_clauses,
)
from training.ner.calibrate import MemoEmbedder

DATA = Path(__file__).resolve().parent / "ranking_data"
HELDOUT = DATA / "heldout.jsonl"
W_GRID = [0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.2, 0.3, 0.5, 0.8]
L2_GRID = [1e-4, 1e-3, 1e-2]
T_GRID = [0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15]
FOLDS = 5
COMPOSITES = 40  # per condition
# Clauses that say nothing about the condition; composites mix one in so that the head learns to
# look past them (written for MedSight).
FILLERS = [
    "I have been feeling really unwell lately",
    "this has been going on for about a week",
    "I don't know what is wrong with me",
    "it is getting worse every day",
    "I am really worried about it",
    "I can't go to work because of it",
    "it started a few days ago",
    "I have never had anything like this before",
    "nothing I try seems to help",
    "I feel terrible and it is affecting my sleep",
    "it comes and goes",
    "my family has noticed it too",
    "I'm not sure what to do",
    "it has been bothering me for months",
    "I just don't feel like myself",
    "please help me figure out what this is",
]


def fit_head(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    ids: tuple[str, ...],
    *,
    l2: float = 1e-3,
    steps: int = 300,
    lr: float = 0.05,
    sample_weight: npt.NDArray[np.float64] | None = None,
) -> ConditionHead:
    """The head's weights: full-batch Adam on the weighted cross-entropy plus L2.

    Deterministic (zero start). Training only: the service loads the saved head.
    """
    n, d = x.shape
    k = len(ids)
    xs = np.asarray(x, dtype=np.float64)
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sw = sw / sw.sum()
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    w = np.zeros((d, k))
    b = np.zeros(k)
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        z = xs @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sw[:, None]
        gw = xs.T @ g + l2 * w
        gb = g.sum(axis=0)
        mw = b1 * mw + (1 - b1) * gw
        vw = b2 * vw + (1 - b2) * gw * gw
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        c1, c2 = 1 - b1**t, 1 - b2**t
        w -= lr * (mw / c1) / (np.sqrt(vw / c2) + eps)
        b -= lr * (mb / c1) / (np.sqrt(vb / c2) + eps)
    return ConditionHead(ids, w.astype(np.float32), b.astype(np.float32))


def text_vectors(embedder: Any, texts: list[str]) -> np.ndarray:
    """The ranker's text vector (normalised mean of clause vectors) of each text."""
    return np.stack([mean_vector(embedder.encode(split_clauses(t) or [t])) for t in texts])


def sha256(paths: list[Path]) -> str:
    """Digest of the training inputs (stored with the head)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def closed_set(pred: list[str], true: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over ``labels`` (same arithmetic as ``evaluate_classify``)."""
    f1s = []
    for lab in labels:
        tp = sum(t == lab and p == lab for t, p in zip(true, pred, strict=True))
        n_pred = sum(p == lab for p in pred)
        n_true = sum(t == lab for t in true)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_true if n_true else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    acc = sum(t == p for t, p in zip(true, pred, strict=True)) / len(true)
    return {"accuracy": round(acc, 4), "macro_f1": round(sum(f1s) / len(f1s), 4)}


def main() -> None:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="report JSON")
    parser.add_argument("--no-save", action="store_true", help="do not write the head")
    parser.add_argument("--compose", action="store_true", help="add composite descriptions")
    args = parser.parse_args()
    from backend.ml.nlp.pipeline import load_clinical_nlp, load_minilm_embedder

    t0 = time.time()
    embedder = MemoEmbedder(load_minilm_embedder())
    nlp = load_clinical_nlp(embedder=embedder, use_head=False, parallel=False)
    ranker, extractor = nlp.ranker, nlp.extractor
    profiles = nlp.profiles
    ids = tuple(p.id for p in profiles)
    index = {cid: i for i, cid in enumerate(ids)}

    # -- training text ------------------------------------------------------------------------
    base_texts: list[str] = []
    base_y: list[int] = []
    v_texts: list[str] = []
    v_y: list[int] = []
    v_fold: list[int] = []
    for i, p in enumerate(profiles):
        for t in p.symptoms + p.descriptions:
            base_texts.append(t)
            base_y.append(i)
        for j, t in enumerate(p.vignettes):
            v_texts.append(t)
            v_y.append(i)
            v_fold.append(j % FOLDS)
    xb = text_vectors(embedder, base_texts)
    # Composite descriptions: the normalised mean of 2-5 clause vectors of one condition's
    # phrases (plus, half the time, a filler clause), i.e. the text vector of a patient naming
    # several of its symptoms at once. Built from profile phrases only, so no fold leaks.
    if args.compose:
        rng = np.random.default_rng(0)
        filler_vecs = embedder.encode(FILLERS)
        comp_x: list[np.ndarray] = []
        comp_y: list[int] = []
        for i, p in enumerate(profiles):
            units = [c for t in p.phrases for c in (split_clauses(t) or [t])]
            uv = embedder.encode(units)
            for _ in range(COMPOSITES):
                k = int(rng.integers(2, min(5, len(units)) + 1))
                rows = [uv[j] for j in rng.choice(len(units), size=k, replace=False)]
                if rng.random() < 0.5:
                    rows.append(filler_vecs[int(rng.integers(len(FILLERS)))])
                comp_x.append(mean_vector(np.stack(rows)))
                comp_y.append(i)
        xb = np.concatenate([xb, np.stack(comp_x)])
        base_y = base_y + comp_y
    xv = text_vectors(embedder, v_texts)
    yb = np.array(base_y, dtype=np.int64)
    yv = np.array(v_y, dtype=np.int64)
    fold = np.array(v_fold)

    ents: dict[str, Any] = {}

    def zero_shot(texts: list[str], rk: Any = ranker) -> np.ndarray:
        out = np.zeros((len(texts), len(ids)))
        for r, t in enumerate(texts):
            if t not in ents:
                ents[t] = extractor.extract(t)
            for item in rk.rank(t, ents[t]):
                out[r, index[item.profile.id]] = item.score
        return out

    def with_lay(mask: np.ndarray) -> Any:
        extra: dict[int, list[str]] = {}
        for t, y, m in zip(v_texts, v_y, mask, strict=True):
            if m:
                extra.setdefault(y, []).append(t)
        prof = [
            dataclasses.replace(p, vignettes=tuple(extra.get(i, [])))
            for i, p in enumerate(profiles)
        ]
        return ConditionRanker(prof, extractor.symptoms, embedder)

    # Out-of-fold zero-shot scores: the vignettes of the scored fold are removed from the
    # profiles (the shipped ranker matches all of them, like the other descriptions).
    zv = np.zeros((len(v_texts), len(ids)))
    for f in range(FOLDS):
        sel = [t for t, g in zip(v_texts, v_fold, strict=True) if g == f]
        zv[fold == f] = zero_shot(sel, with_lay(fold != f))

    def weights(y: np.ndarray) -> np.ndarray:
        # Every condition weighs the same in total; within a condition each text weighs the same.
        counts = np.bincount(y, minlength=len(ids)).astype(np.float64)
        return 1.0 / counts[y]

    def fit(mask: np.ndarray, l2: float) -> ConditionHead:
        x = np.concatenate([xb, xv[mask]])
        y = np.concatenate([yb, yv[mask]])
        return fit_head(x, y, ids, l2=l2, sample_weight=weights(y))

    # -- cross-validation over the vignettes --------------------------------------------------
    cv: dict[str, Any] = {}
    best: tuple[float, float, float] | None = None  # (accuracy, -w, l2)
    oof_best: np.ndarray | None = None
    for l2 in L2_GRID:
        oof = np.zeros((len(v_texts), len(ids)))
        for f in range(FOLDS):
            head = fit(fold != f, l2)
            oof[fold == f] = head.log_proba(xv[fold == f])
        for w in W_GRID:
            acc = float(((zv + w * oof).argmax(axis=1) == yv).mean())
            cv[f"l2={l2} w={w}"] = round(acc, 4)
            key = (acc, -w, -l2)
            if best is None or key > (best[0], -best[1], -best[2]):
                best = (acc, w, l2)
                oof_best = oof
        cv[f"l2={l2} head alone"] = round(float((oof.argmax(axis=1) == yv).mean()), 4)
    if best is None or oof_best is None:
        raise RuntimeError("no cross-validation result")
    acc_cv, w_best, l2_best = best
    scores = zv + w_best * oof_best
    t_best, nll_best = T_GRID[0], math.inf
    for t in T_GRID:
        s = scores / t
        m = s.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
        nll = float((lse - s[np.arange(len(yv)), yv]).mean())
        if nll < nll_best:
            t_best, nll_best = t, nll

    final = fit(np.ones(len(v_texts), bool), l2_best)
    final = ConditionHead(final.ids, final.weights, final.bias, w_best, t_best)
    meta = {
        "trained_on": "profile phrases + authored vignettes (no Symptom2Disease text)",
        "texts": len(base_texts) + len(v_texts),
        "vignettes": len(v_texts),
        "composites_per_condition": COMPOSITES if args.compose else 0,
        "l2": l2_best,
        "weight": w_best,
        "temperature": t_best,
        "cv_top1_all_profiles": round(acc_cv, 4),
        "cv_top1_zero_shot": round(float((zv.argmax(axis=1) == yv).mean()), 4),
        "cv_nll": round(nll_best, 4),
        "inputs_sha256": sha256([DEFAULT_PROFILES]),
    }
    if not args.no_save:
        final.save(HEAD_FILE, meta)

    # -- own held-out set ---------------------------------------------------------------------
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines() if line]
    h_labels = sorted({r["label"] for r in rows})
    lab_id = {lab: profile_for_label(profiles, lab).id for lab in h_labels}  # type: ignore[union-attr]
    id_lab = {v: k for k, v in lab_id.items()}
    cand = np.array([cid in id_lab for cid in ids])
    h_texts = [r["text"] for r in rows]
    zh = zero_shot(h_texts, ranker)
    lh = final.log_proba(text_vectors(embedder, h_texts))
    true = [r["label"] for r in rows]
    held: dict[str, Any] = {}
    for name, sc in (("zero_shot", zh), ("with_head", zh + w_best * lh), ("head_alone", lh)):
        closed = np.where(cand, sc, -np.inf).argmax(axis=1)
        pred = [id_lab[ids[k]] for k in closed]
        held[name] = closed_set(pred, true, h_labels)
        held[name]["top1_all_profiles"] = round(
            float(
                np.mean([ids[k] == lab_id[t] for k, t in zip(sc.argmax(axis=1), true, strict=True)])
            ),
            4,
        )
    report = {"meta": meta, "cv": cv, "heldout": held, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
