"""Evaluation: NER on an IOB corpus split; zero-shot condition ranking on a label,text CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from training.ner.corpus import file_digest, head_for, iob_path, read_iob

logger = logging.getLogger(__name__)

# Published reference points for the report (span-level exact-match F1 on the test split).
PUBLISHED = {
    "bc5cdr": {
        "model": "scispaCy en_ner_bc5cdr_md (Neumann et al. 2019, scispaCy docs)",
        "micro_f1": 0.84,
    },
    "ncbi": {"model": "BioBERT v1.1 (Lee et al. 2020) NCBI-disease test", "micro_f1": 0.89},
}


def span_set(tags: list[list[str]]) -> set[tuple[int, int, int, str]]:
    """(sentence, start word, end word, type) for every entity in a list of BIO sequences."""
    from backend.ml.nlp.ner_model import bio_to_spans

    out: set[tuple[int, int, int, str]] = set()
    for i, sent in enumerate(tags):
        for a, b, t in bio_to_spans(sent):
            out.add((i, a, b, t))
    return out


def prf(gold: set[Any], pred: set[Any]) -> dict[str, float]:
    """Precision, recall, F1 and counts of exact matches."""
    tp = len(gold & pred)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(gold) if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f, 4),
        "tp": tp,
        "gold": len(gold),
        "pred": len(pred),
    }


def tag_sorted(tagger: Any, sentences: list[list[str]], head: str) -> list[list[str]]:
    """``tagger.tag_words`` over the sentences in length order, returned in the input order."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    tagged = tagger.tag_words([sentences[i] for i in order], head)
    out: list[list[str]] = [[] for _ in sentences]
    for i, tags in zip(order, tagged, strict=True):
        out[i] = tags
    return out


def evaluate_ner(
    data_dir: Path,
    split: str,
    out: Path,
    *,
    model_dir: Path | None = None,
    threads: int = 1,
    record: bool = False,
    post: bool | None = None,
    post_window: int = 5,
) -> dict[str, Any]:
    """Exact-span P/R/F1 per type and micro F1 on ``data_dir/<iob/>{split}.tsv``.

    ``data_dir`` is one corpus folder (layout of ``../shared/data/ner/<corpus>``); the model head
    with the corpus's name is used (bc5cdr, ncbi-disease -> ncbi, anatem). ``record`` writes the
    scores into the model's metadata.json under ``metrics[head][split]``. Sentences are tagged
    in length order (less padding; each sentence is scored on its own, so the tags do not
    depend on the order). ``post`` applies the document-level rules of
    :mod:`backend.ml.nlp.ner_post` with each sentence's ``post_window`` neighbours on either side
    as its document (the IOB files carry no document markers); left at None it follows the
    model: on when its metadata.json has a ``postprocess`` entry (its ``min_ratio``,
    ``abbreviations`` and ``consistency`` are used). The scores without post-processing are
    reported beside them under ``raw``.
    """
    import torch

    from backend.ml.nlp.ner_model import NERTagger
    from backend.ml.nlp.pipeline import DEFAULT_MODEL_DIR

    torch.set_num_threads(threads)
    mdir = model_dir or DEFAULT_MODEL_DIR
    tagger = NERTagger(mdir)
    path = iob_path(data_dir, split)
    corpus = read_iob(path)
    head, types = head_for(data_dir, corpus)
    if head not in tagger.heads:
        raise ValueError(f"model {mdir} has no head for corpus {head!r}: {sorted(tagger.heads)}")
    t0 = time.time()
    pred_tags = tag_sorted(tagger, corpus.words, head)
    gold = span_set(corpus.tags)
    post_cfg: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    model_post = tagger.metadata.get("postprocess")
    if post or (post is None and model_post):
        from backend.ml.nlp.ner_post import postprocess_windows

        post_cfg = {
            "abbreviations": True,
            "consistency": True,
            "min_ratio": 0.67,
            **(model_post or {}),
            "window": post_window,
        }
        raw_pred = span_set(pred_tags)
        raw = {
            "micro_f1": prf(gold, raw_pred)["f1"],
            "per_type_f1": {
                t: prf({g for g in gold if g[3] == t}, {p for p in raw_pred if p[3] == t})["f1"]
                for t in sorted({g[3] for g in gold} | {p[3] for p in raw_pred})
            },
        }
        pred_tags = postprocess_windows(
            corpus.words,
            pred_tags,
            window=post_window,
            abbreviations=bool(post_cfg["abbreviations"]),
            consistency=bool(post_cfg["consistency"]),
            min_ratio=float(post_cfg["min_ratio"]),
        )
    seconds = time.time() - t0
    pred = span_set(pred_tags)
    per_type = {
        t: prf({g for g in gold if g[3] == t}, {p for p in pred if p[3] == t})
        for t in sorted({g[3] for g in gold} | {p[3] for p in pred})
    }
    micro = prf(gold, pred)
    report: dict[str, Any] = {
        "task": "ner",
        "corpus": data_dir.name,
        "head": head,
        "split": split,
        "file": str(path),
        "sha256": file_digest([path]),
        "model_dir": str(mdir),
        "model_version": tagger.metadata.get("version"),
        "sentences": len(corpus.words),
        "metric": "exact span match (type, start, end) on corpus tokens",
        "per_type": per_type,
        "micro": micro,
        "micro_f1": micro["f1"],
        "published": PUBLISHED.get(head),
        "postprocess": post_cfg,
        "raw": raw,
        "seconds": round(seconds, 1),
        "evaluated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if record:
        meta_path = mdir / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta.setdefault("metrics", {}).setdefault(head, {})[split] = {
            "micro_f1": micro["f1"],
            "precision": micro["precision"],
            "recall": micro["recall"],
            "per_type_f1": {t: v["f1"] for t, v in per_type.items()},
            "sha256": report["sha256"],
            "published": PUBLISHED.get(head),
            "postprocess": post_cfg,
            "raw": raw,
        }
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return report


def read_label_csv(csv_path: Path) -> list[tuple[str, str]]:
    """(label, text) rows of a CSV with ``label`` and ``text`` columns."""
    with csv_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"label", "text"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path} needs 'label' and 'text' columns")
        return [(row["label"], row["text"]) for row in reader]


def evaluate_classify(
    csv_path: Path,
    out: Path,
    *,
    model_dir: Path | None = None,
    embedder: Any | None = None,
    use_embeddings: bool = True,
    use_ner: bool = True,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class P/R/F1 of the zero-shot ranker on a label,text CSV.

    The ranking is restricted to the profiles that the CSV's labels name (a closed-set score over
    the dataset's classes); top-1 accuracy over all shipped profiles is reported beside it.
    Nothing is fitted to the CSV.
    """
    from backend.ml.nlp.conditions import profile_for_label
    from backend.ml.nlp.pipeline import load_clinical_nlp, load_minilm_embedder

    rows = read_label_csv(csv_path)
    if embedder is None and use_embeddings:
        embedder = load_minilm_embedder()
    nlp = load_clinical_nlp(model_dir, embedder=embedder, use_ner=use_ner)
    label_to_id: dict[str, str] = {}
    missing: list[str] = []
    for label in sorted({lab for lab, _ in rows}):
        prof = profile_for_label(nlp.profiles, label)
        if prof is None:
            missing.append(label)
        else:
            label_to_id[label] = prof.id
    if missing:
        raise ValueError(f"no condition profile for labels {missing}; add them to the profiles")
    candidates = set(label_to_id.values())
    id_to_label = {v: k for k, v in label_to_id.items()}
    y_true: list[str] = []
    y_pred: list[str] = []
    open_hits = 0
    t0 = time.time()
    for label, text in rows:
        # One extraction and one ranking over all profiles; the closed-set prediction is the
        # best-ranked profile among the CSV's classes (same order as ranking only those).
        ranked = nlp.ranker.rank(text, nlp.extractor.extract(text))
        closed = next((r for r in ranked if r.profile.id in candidates), None)
        y_true.append(label)
        y_pred.append(id_to_label.get(closed.profile.id, "") if closed else "")
        open_hits += int(bool(ranked) and ranked[0].profile.id == label_to_id[label])
    seconds = time.time() - t0
    labels = sorted(label_to_id)
    per_class: dict[str, dict[str, float]] = {}
    for lab in labels:
        tp = sum(t == lab and p == lab for t, p in zip(y_true, y_pred, strict=True))
        n_pred = sum(p == lab for p in y_pred)
        n_true = sum(t == lab for t in y_true)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_true if n_true else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[lab] = {
            "precision": round(prec, 4),
            "recall": round(rec, 4),
            "f1": round(f1, 4),
            "support": n_true,
        }
    acc = sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(rows)
    confusion = Counter((t, p) for t, p in zip(y_true, y_pred, strict=True) if t != p)
    report: dict[str, Any] = {
        "task": "classify",
        "csv": str(csv_path),
        "sha256": file_digest([csv_path]),
        "rows": len(rows),
        "method": nlp.ranker.method + ("+ner" if use_ner else ""),
        "model_version": nlp.version,
        "accuracy": round(acc, 4),
        "macro_f1": round(sum(c["f1"] for c in per_class.values()) / len(per_class), 4),
        "accuracy_open_set_all_profiles": round(open_hits / len(rows), 4),
        "per_class": per_class,
        "top_confusions": [
            {"true": t, "pred": p, "count": c} for (t, p), c in confusion.most_common(15)
        ],
        "seconds": round(seconds, 1),
        "note": "zero-shot: profiles written from reference text, never fitted to this CSV",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report
