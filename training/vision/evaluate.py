"""``medsight eval vision``: AUROC (overall, per finding), ablation, thresholds, ECE, plots."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from tqdm import tqdm

from backend.ml.vision.fusion import anomaly_scores, component_values, ood_scores, sigmoid
from backend.ml.vision.scorer import VisionScorer, load_scorer

from .data import Record, load_gray, read_manifest
from .plots import plot_histograms, plot_pr, plot_reliability, plot_roc
from .robustness import auroc_or_none


def expected_calibration_error(
    p: np.ndarray, y: np.ndarray, n_bins: int = 10
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    conf, acc, cnt = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins, int)
    for b in range(n_bins):
        m = idx == b
        cnt[b] = int(m.sum())
        if cnt[b]:
            conf[b], acc[b] = p[m].mean(), y[m].mean()
    ece = float(np.sum(cnt / max(len(p), 1) * np.abs(conf - acc)))
    return ece, conf, acc, cnt


def score_records(
    scorer: VisionScorer, records: list[Record], batch_size: int = 16, progress: bool = True
) -> dict[str, Any]:
    """Raw components, both fusion scores and OOD flags for every record."""
    raws: list[dict[str, np.ndarray]] = []
    for i in tqdm(range(0, len(records), batch_size), desc="scoring", disable=not progress):
        imgs = [load_gray(r.path) for r in records[i : i + batch_size]]
        x, _, _ = scorer.prepare(imgs)
        raws.append(scorer.run_network(x))
    raw = {k: np.concatenate([r[k] for r in raws]) for k in raws[0]}
    values = component_values(raw)
    cal = scorer.calibration
    fused, z = anomaly_scores(values, cal, "default")
    published, _ = anomaly_scores(values, cal, "published")
    return {
        "values": values,
        "z": z,
        "default": fused,
        "published": published,
        "ood": ood_scores(raw["ood"], values["patch"], cal["ood"]) > cal["ood"]["threshold"],
    }


def evaluate_vision(
    data_dir: Path,
    split: str,
    out: Path,
    *,
    model_dir: Path | None = None,
    plots_dir: Path | None = None,
    calibration: Path | None = None,
    fusion: str = "default",
    backend: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate on one split of a cxr-dev-layout folder; writes report.json (and PNG plots)."""
    t0 = time.time()
    records = [r for r in read_manifest(Path(data_dir)) if r.split == split]
    if not records:
        raise ValueError(f"no records with split={split!r} in {data_dir}")
    scorer = load_scorer(model_dir, calibration=calibration, backend=backend, fusion=fusion)
    res = score_records(scorer, records, progress=progress)
    y = np.array([r.label == "abnormal" for r in records], dtype=int)
    finding = np.array([r.finding for r in records])
    score = res[fusion]
    fcal = scorer.calibration["fusion"][fusion]
    thr = float(fcal["threshold"])
    z = res["z"]
    ablation_scores = {
        "recon": res["values"]["recon"],
        "kl": res["values"]["kl"],
        "vit": res["values"]["vit"],
        "knn": res["values"]["knn"],
        "patch": res["values"]["patch"],
        "recon_kl": 0.4 * sigmoid(z["recon"]) + 0.2 * sigmoid(z["kl"]),
        "published_fused": res["published"],
        "fused": res["default"],
    }
    normals = finding[y == 0][0] if (y == 0).any() else "Normal"
    by_finding: dict[str, float | None] = {}
    for f in sorted(set(finding[y == 1])):
        m = (y == 0) | (finding == f)
        by_finding[f] = auroc_or_none(y[m], score[m])
    pred = score >= thr
    tp, tn = int((pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    prob = np.clip(score / 100.0, 0, 1)
    ece, conf, acc, cnt = expected_calibration_error(prob, y)
    report: dict[str, Any] = {
        "split": split,
        "n": len(records),
        "n_by_finding": {f: int((finding == f).sum()) for f in sorted(set(finding))},
        "fusion": fusion,
        "backend": scorer.backend,
        "model_version": scorer.version,
        "weights_sha256": scorer.weights_sha256,
        "calibration": str(calibration) if calibration else "shipped",
        "auroc": auroc_or_none(y, score),
        "auroc_by_finding": by_finding,
        "average_precision": float(average_precision_score(y, score))
        if 0 < y.sum() < len(y)
        else None,
        "ablation": {k: auroc_or_none(y, v) for k, v in ablation_scores.items()},
        "ablation_by_finding": {
            f: {
                k: auroc_or_none(y[(y == 0) | (finding == f)], v[(y == 0) | (finding == f)])
                for k, v in ablation_scores.items()
            }
            for f in by_finding
        },
        "threshold": thr,
        "sensitivity": tp / max(int(y.sum()), 1),
        "specificity": tn / max(int((y == 0).sum()), 1),
        "sensitivity_by_finding": {f: float(pred[finding == f].mean()) for f in by_finding},
        "ece": ece,
        "risk_levels": {
            lvl: int(c)
            for lvl, c in zip(
                *np.unique(
                    np.where(
                        score >= thr,
                        "HIGH",
                        np.where(score >= min(fcal["moderate_cut"], thr), "MODERATE", "LOW"),
                    ),
                    return_counts=True,
                ),
                strict=True,
            )
        },
        "ood_accept_rate": float(1.0 - res["ood"].mean()),
        "normal_reference": normals,
        "seconds": round(time.time() - t0, 1),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if plots_dir is not None:
        plots_dir = Path(plots_dir)
        roc, pr = {}, {}
        for name in ("fused", "published_fused", "patch", "knn", "recon"):
            s = ablation_scores[name]
            fpr, tpr, _ = roc_curve(y, s)
            roc[name] = (fpr, tpr, float(roc_auc_score(y, s)))
            p, r, _ = precision_recall_curve(y, s)
            pr[name] = (r, p, float(average_precision_score(y, s)))
        plot_roc(roc, plots_dir / "roc.png")
        plot_pr(pr, plots_dir / "pr.png")
        plot_histograms(
            {f: score[finding == f] for f in sorted(set(finding))},
            thr,
            plots_dir / "score_histograms.png",
        )
        plot_reliability(conf, acc, cnt, ece, plots_dir / "reliability.png")
    return report
