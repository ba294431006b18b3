"""Robustness table: AUROC of the shipped scorer under simulated acquisition shifts.

    python -m training.vision.robustness --data ../shared/data/cxr-dev --split test \
        --out /tmp/robustness.json [--calibration FILE] [--shifts "none,blur sigma 2 px"]
    python -m training.vision.robustness table /tmp/robustness.json   # the README table
    python -m training.vision.robustness components /tmp/robustness.json  # patch vs kNN weights

Every image of the split goes through each shift (training/vision/shifts.py, deterministic per
image), then the real scoring path (`VisionScorer.prepare` / `run_network` / fusion). Reported
per shift: AUROC (all, COVID, Viral Pneumonia), mean score of normals and abnormals, the share of
images the chest X-ray gate accepts, the share of images the population check flags, and the
specificity / sensitivity at the model's threshold. Per-image values are kept in the JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from backend.ml.vision.fusion import (
    anomaly_scores,
    component_values,
    fused_z,
    ood_scores,
    zscores,
)
from backend.ml.vision.population import ACQUISITION, acquisition_values, outside_population
from backend.ml.vision.scorer import load_scorer

from .data import load_gray, read_manifest
from .shifts import SHIFTS

# score_images' columns -> the names the service, the drift monitor and the reference use.
REFERENCE_NAMES = {
    "score": "score",
    "ood": "feature_distance",
    "mean": "mean_intensity",
    "std": "std_intensity",
}


def auroc_or_none(y: np.ndarray, s: np.ndarray) -> float | None:
    """AUROC, or None when y holds one class only."""
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def as_reference_features(
    cols: dict[str, np.ndarray], take: Any = slice(None)
) -> dict[str, np.ndarray]:
    """Rows `take` of score_images' columns under the reference's feature names."""
    return {name: np.asarray(cols[key])[take] for key, name in REFERENCE_NAMES.items()}


def outside_population_flags(cols: dict[str, np.ndarray], reference: Any) -> np.ndarray:
    """Per image: does the per-image population check flag it against `reference`?"""
    features = as_reference_features(cols)
    if "acquisition" in cols:
        features[ACQUISITION] = np.asarray(cols["acquisition"])
    n = len(features["score"])
    return np.array(
        [
            bool(outside_population({k: v[i] for k, v in features.items()}, reference))
            for i in range(n)
        ]
    )


def drift_statuses(
    cols: dict[str, np.ndarray],
    mix: Sequence[tuple[np.ndarray, int]],
    reference: dict[str, Any],
    rng: np.random.Generator,
    n_windows: int = 50,
) -> list[str]:
    """The drift monitor's status for each of n_windows random windows; a window takes `k`
    rows (without replacement) from each `(rows, k)` pool of `mix`."""
    from backend.monitoring.drift import drift_test

    def window() -> np.ndarray:
        return np.concatenate([rng.choice(rows, k, replace=False) for rows, k in mix])

    return [
        drift_test(as_reference_features(cols, window()), reference["features"]).status
        for _ in range(n_windows)
    ]


def image_stats(prepared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std intensity (0-1) of each prepared network input (N, 1, S, S)."""
    flat = prepared.reshape(len(prepared), -1)
    return flat.mean(axis=1), flat.std(axis=1)


def score_images(
    scorer: Any, images: list[np.ndarray], batch: int = 16, *, descriptors: bool = False
) -> dict[str, np.ndarray]:
    """Per-image columns of the real scoring path; `descriptors` adds the (N, D) descriptors."""
    cols: dict[str, list[np.ndarray]] = {}
    cal = scorer.calibration
    for i in range(0, len(images), batch):
        x, _, _ = scorer.prepare(images[i : i + batch])
        raw = scorer.run_network(x)
        values = component_values(raw)
        score, _ = anomaly_scores(values, cal, scorer.fusion)
        ood = ood_scores(raw["ood"], values["patch"], cal["ood"])
        mean, std = image_stats(x)
        acquisition = acquisition_values(raw["descriptor"], scorer.reference)
        if acquisition is not None:
            cols.setdefault("acquisition", []).append(acquisition)
        if descriptors:
            cols.setdefault("descriptor", []).append(np.asarray(raw["descriptor"], np.float64))
        for key, val in (
            ("score", np.clip(score, 0, 100)),
            ("ood", ood),
            ("head", raw["ood"]),
            ("knn", values["knn"]),
            ("patch", values["patch"]),
            ("mean", mean),
            ("std", std),
        ):
            cols.setdefault(key, []).append(np.asarray(val, dtype=np.float64))
    return {k: np.concatenate(v) for k, v in cols.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--calibration", type=Path, default=None)
    ap.add_argument("--shifts", default="", help="comma-separated names (default: all)")
    ap.add_argument(
        "--upscale",
        type=int,
        default=0,
        help="resize every image to N x N (bicubic) before its shift: noise and JPEG at an "
        "acquisition-like resolution, which the scorer's INTER_AREA downsizing then averages",
    )
    args = ap.parse_args()
    scorer = load_scorer(args.model_dir, calibration=args.calibration)
    cal = scorer.calibration
    thr = float(cal["fusion"][scorer.fusion]["threshold"])
    records = [r for r in read_manifest(args.data) if r.split == args.split]
    y = np.array([r.label == "abnormal" for r in records], dtype=int)
    finding = np.array([r.finding for r in records])
    base = [load_gray(r.path) for r in records]
    if args.upscale:
        size = (args.upscale, args.upscale)
        base = [cv2.resize(im, size, interpolation=cv2.INTER_CUBIC) for im in base]
    names = [s.strip() for s in args.shifts.split(",") if s.strip()] or list(SHIFTS)
    report: dict[str, Any] = {
        "split": args.split,
        "n": len(records),
        "ids": [r.id for r in records],
        "label": y.tolist(),
        "finding": finding.tolist(),
        "threshold": thr,
        "stats": cal["stats"],  # the z-statistics it was scored with (shipped or site)
        "shifts": {},
    }
    for name in names:
        t0 = time.time()
        shifted = [SHIFTS[name](im, k) for k, im in enumerate(base)]
        cols = score_images(scorer, shifted)
        s = cols["score"]
        covid = (finding == "COVID") | (y == 0)
        vp = (finding == "Viral Pneumonia") | (y == 0)
        row = {
            "auroc": auroc_or_none(y, s),
            "auroc_covid": auroc_or_none(y[covid], s[covid]),
            "auroc_vp": auroc_or_none(y[vp], s[vp]),
            "normal_mean_score": float(s[y == 0].mean()),
            "abnormal_mean_score": float(s[y == 1].mean()),
            "specificity": float((s[y == 0] < thr).mean()),
            "sensitivity": float((s[y == 1] >= thr).mean()),
            "accepted_as_xray": float((cols["ood"] <= cal["ood"]["threshold"]).mean()),
            "seconds": round(time.time() - t0, 1),
            "per_image": {k: np.round(v, 5).tolist() for k, v in cols.items()},
        }
        report["shifts"][name] = row
        print(  # noqa: T201 - script output
            f"{name:34s} AUROC {row['auroc']:.3f} COVID {row['auroc_covid']:.3f} "
            f"VP {row['auroc_vp']:.3f} spec {row['specificity']:.2f} sens {row['sensitivity']:.2f}"
            f" xray {row['accepted_as_xray']:.2f} ({row['seconds']} s)",
            flush=True,
        )
        args.out.write_text(json.dumps(report))


def markdown_table(report: dict[str, Any], reference: dict[str, Any], seed: int = 0) -> str:
    """The README table: AUROC, operating point, gate, population check and drift per shift."""
    y = np.array(report["label"])
    rng = np.random.default_rng(seed)
    lines = [
        "| shift (TEST, n = 675) | AUROC | COVID | VP | spec. | sens. | X-ray gate | outside "
        "pop. | drift: 40 normals |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    normals = np.where(y == 0)[0]
    for name, row in report["shifts"].items():
        pi = {k: np.asarray(v) for k, v in row["per_image"].items()}
        outside = np.mean(outside_population_flags(pi, reference))
        statuses = drift_statuses(pi, [(normals, 40)], reference, rng)
        flagged = sum(s != "ok" for s in statuses) / len(statuses)
        lines.append(
            f"| {name} | {row['auroc']:.3f} | {row['auroc_covid']:.3f} | {row['auroc_vp']:.3f} "
            f"| {row['specificity']:.2f} | {row['sensitivity']:.2f} "
            f"| {100 * row['accepted_as_xray']:.0f}% | {100 * outside:.0f}% "
            f"| {100 * flagged:.0f}% flagged |"
        )
    return "\n".join(lines)


def window_counts(
    report: dict[str, Any], reference: dict[str, Any], seed: int = 0, n_windows: int = 200
) -> dict[str, dict[str, int]]:
    """Drift statuses of random windows of unshifted images, by the mix of the window
    (docs/monitoring.md): normals, a mix, COVID, paediatric viral pneumonia, and half of each."""
    from collections import Counter

    cols = {k: np.asarray(v) for k, v in report["shifts"]["none"]["per_image"].items()}
    finding = np.array(report["finding"])
    pool = {
        "normal": np.where(np.array(report["label"]) == 0)[0],
        "any": np.arange(len(finding)),
        "COVID": np.where(finding == "COVID")[0],
        "VP": np.where(finding == "Viral Pneumonia")[0],
    }
    mixes = {
        "24 normals": {"normal": 24},
        "40 normals": {"normal": 40},
        "40 mixed": {"any": 40},
        "40 COVID": {"COVID": 40},
        "20 normals + 20 paediatric VP": {"normal": 20, "VP": 20},
        "40 paediatric VP": {"VP": 40},
    }
    rng = np.random.default_rng(seed)
    return {
        name: dict(
            Counter(
                drift_statuses(
                    cols, [(pool[p], k) for p, k in mix.items()], reference, rng, n_windows
                )
            )
        )
        for name, mix in mixes.items()
    }


def table_main() -> None:
    ap = argparse.ArgumentParser(description="Print the README table from a robustness JSON.")
    ap.add_argument("report", type=Path)
    ap.add_argument("--reference", type=Path, default=None)
    args = ap.parse_args()
    from backend.ml.vision.population import load_reference
    from backend.ml.vision.scorer import DEFAULT_MODEL_DIR

    ref_dir = args.reference.parent if args.reference else DEFAULT_MODEL_DIR
    reference = load_reference(ref_dir)
    assert reference is not None  # noqa: S101 - the shipped model has one
    report = json.loads(args.report.read_text())
    print(markdown_table(report, reference))  # noqa: T201
    if "none" in report["shifts"]:
        for name, counts in window_counts(report, reference).items():
            print(f"drift, 200 windows of {name}: {counts}")  # noqa: T201


PATCH_WEIGHTS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)


def component_table(report: dict[str, Any]) -> str:
    """AUROC per shift of the two fused components and of patch / kNN weightings of their
    z-scores (the statistics the run scored with): is the shipped weighting also the
    shift-robust one?"""
    y = np.array(report["label"])
    head = " | ".join(f"w_patch {w:.1f}" for w in PATCH_WEIGHTS)
    lines = [
        f"| shift ({report['split']}, n = {len(y)}) | patch | kNN | {head} |",
        "|---" * (3 + len(PATCH_WEIGHTS)) + "|",
    ]
    rows: dict[str, list[float]] = {}
    for name, row in report["shifts"].items():
        pi = {k: np.asarray(v) for k, v in row["per_image"].items() if k in ("patch", "knn")}
        z = zscores(pi, report["stats"])
        vals = [roc_auc_score(y, pi["patch"]), roc_auc_score(y, pi["knn"])]
        vals += [roc_auc_score(y, fused_z(z, {"patch": w, "knn": 1 - w})) for w in PATCH_WEIGHTS]
        rows[name] = vals
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    shifted = [v for k, v in rows.items() if k != "none"]
    if shifted:
        for label, agg in (("mean of the shifts", np.mean), ("worst shift", np.min)):
            cells = " | ".join(f"{v:.3f}" for v in agg(np.array(shifted), axis=0))
            lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def components_main() -> None:
    ap = argparse.ArgumentParser(description="Patch / kNN weightings under each shift.")
    ap.add_argument("report", type=Path)
    args = ap.parse_args()
    print(component_table(json.loads(args.report.read_text())))  # noqa: T201


if __name__ == "__main__":
    import sys

    commands = {"table": table_main, "components": components_main}
    if len(sys.argv) > 1 and sys.argv[1] in commands:
        commands[sys.argv.pop(1)]()
    else:
        main()
