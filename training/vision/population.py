"""Build ``models/vision/<v>/reference.json``: the reference population of a checkpoint.

    python -m training.vision.population --data ../shared/data/cxr-dev --out models/vision/v1/

From the VALIDATION split only (never test): each image's anomaly score, feature distance to the
normal reference (the OOD score) and intensity mean / standard deviation, kept per label, are the
drift monitor's reference; the population range of each input feature is the central
``1 - 2 * TAIL`` of the validation X-rays (normal and abnormal), widened by ``MARGIN`` of its
width on each side.

The acquisition check is fitted here too: a logistic regression on the L2-normalised pooled
stage-5 descriptor, the validation split's paediatric films (``Viral Pneumonia``: children,
another hospital) against its adult ones (normal and COVID), C chosen by 5-fold
cross-validation on the same split. Its limit is the same rule applied to the cross-validated
values of the adult films (upper side only). It learns what tells those films apart, which is
the acquisition as much as the age (see ``models/vision/README.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from backend.ml.vision.population import (
    ACQUISITION,
    POPULATION_FEATURES,
    REFERENCE_FILE,
    REFERENCE_FORMAT,
)
from backend.ml.vision.scorer import load_scorer

from .data import load_gray, read_manifest
from .robustness import as_reference_features, score_images

TAIL = 0.0025
MARGIN = 0.10
# cxr-dev's paediatric class (Kermany et al.; the data README): the acquisition check's positives.
PAEDIATRIC_FINDING = "Viral Pneumonia"
ACQUISITION_C = (0.1, 0.3, 1.0)


def population_range(values: np.ndarray) -> tuple[float, float]:
    """The population rule: the central ``1 - 2 * TAIL``, widened by ``MARGIN`` each side."""
    lo, hi = np.quantile(values, [TAIL, 1 - TAIL])
    pad = MARGIN * (hi - lo)
    return float(lo - pad), float(hi + pad)


def population_limits(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for name in POPULATION_FEATURES:
        lo, hi = population_range(values[name])
        out[name] = {"lo": round(lo, 5), "hi": round(hi, 5)}
    return out


def upper_limit(values: np.ndarray) -> float:
    """The upper side of the population rule (the check flags values above it)."""
    return population_range(values)[1]


def fit_acquisition(
    descriptors: np.ndarray, positive: np.ndarray, seed: int = 0
) -> tuple[dict[str, Any], dict[str, float]]:
    """The acquisition model and its population limit (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(positive, dtype=int)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    best: tuple[float, float, float, np.ndarray] | None = None
    for c in ACQUISITION_C:  # most positives above the adults' limit; ties: the smaller C
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        held_out = cross_val_predict(clf, descriptors, y, cv=folds, method="decision_function")
        limit = upper_limit(held_out[y == 0])
        recall = float(np.mean(held_out[y == 1] > limit))
        if best is None or recall > best[1]:
            best = (c, recall, limit, held_out)
    assert best is not None  # noqa: S101 - ACQUISITION_C is not empty
    c, recall, limit, held_out = best
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(descriptors, y)
    model = {
        "model": "logistic regression on the L2-normalised pooled stage-5 descriptor",
        "weights": np.round(clf.coef_[0], 6).tolist(),
        "bias": round(float(clf.intercept_[0]), 6),
        "C": c,
        "n_positive": int(y.sum()),
        "n_negative": int((y == 0).sum()),
        "cross_validated": {
            "positives_above_limit": round(recall, 4),
            "negatives_above_limit": round(float(np.mean(held_out[y == 0] > limit)), 4),
        },
    }
    return model, {"hi": round(limit, 5)}


def build_reference(
    data: Path, model_dir: Path | None = None, split: str = "val"
) -> dict[str, Any]:
    if split == "test":
        raise ValueError("the reference is built from development data, never the test split")
    scorer = load_scorer(model_dir)
    records = [r for r in read_manifest(data) if r.split == split]
    cols = score_images(scorer, [load_gray(r.path) for r in records], descriptors=True)
    label = np.array([r.label for r in records])
    paediatric = np.array([r.finding == PAEDIATRIC_FINDING for r in records])
    acquisition, acquisition_limit = fit_acquisition(cols["descriptor"], paediatric)
    acquisition["positives"] = (
        f"cxr-dev {split} {PAEDIATRIC_FINDING} (paediatric, another hospital): {paediatric.sum()}"
    )
    acquisition["negatives"] = f"cxr-dev {split} adult X-rays (normal and COVID)"
    values = as_reference_features(cols)
    features = {
        name: {
            part: np.round(np.sort(v[label == lab]), 5).tolist()
            for part, lab in (("normal", "normal"), ("abnormal", "abnormal"))
        }
        for name, v in values.items()
    }
    ids = ",".join(r.id for r in records)
    return {
        "format": REFERENCE_FORMAT,
        "weights_sha256": scorer.weights_sha256,
        "source": (
            f"cxr-dev {split} split: {int((label == 'normal').sum())} normal, "
            f"{int((label == 'abnormal').sum())} abnormal"
        ),
        "images_sha256": hashlib.sha256(ids.encode()).hexdigest(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_normal": int((label == "normal").sum()),
        "n_abnormal": int((label == "abnormal").sum()),
        "features": features,
        "population": {**population_limits(values), ACQUISITION: acquisition_limit},
        ACQUISITION: acquisition,
        "population_rule": (
            f"central {100 * (1 - 2 * TAIL):.1f}% of {split} X-rays, widened by "
            f"{100 * MARGIN:.0f}% of that range on each side; {ACQUISITION}: the upper side of "
            f"that rule on the cross-validated values of the {split} split's adult X-rays"
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="the checkpoint folder")
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    ref = build_reference(args.data, args.out, args.split)
    (args.out / REFERENCE_FILE).write_text(json.dumps(ref, separators=(",", ":")) + "\n")
    shown = {k: v for k, v in ref.items() if k != "features"}
    shown[ACQUISITION] = {k: v for k, v in ref[ACQUISITION].items() if k != "weights"}
    print(json.dumps(shown, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
