"""Build ``models/vision/<v>/reference.json``: the reference population of a checkpoint.

    python -m training.vision.population --data ../shared/data/cxr-dev --out models/vision/v1/

From the VALIDATION split only (never test): each image's anomaly score, feature distance to the
normal reference (the OOD score) and intensity mean / standard deviation, kept per label, are the
drift monitor's reference; the population range of each input feature is the central
``1 - 2 * TAIL`` of the validation X-rays (normal and abnormal), widened by ``MARGIN`` of its
width on each side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from backend.ml.vision.population import POPULATION_FEATURES, REFERENCE_FILE, REFERENCE_FORMAT
from backend.ml.vision.scorer import load_scorer

from .data import load_gray, read_manifest
from .robustness import as_reference_features, score_images

TAIL = 0.0025
MARGIN = 0.10


def population_limits(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for name in POPULATION_FEATURES:
        lo, hi = np.quantile(values[name], [TAIL, 1 - TAIL])
        pad = MARGIN * (hi - lo)
        out[name] = {"lo": round(float(lo - pad), 5), "hi": round(float(hi + pad), 5)}
    return out


def build_reference(
    data: Path, model_dir: Path | None = None, split: str = "val"
) -> dict[str, Any]:
    if split == "test":
        raise ValueError("the reference is built from development data, never the test split")
    scorer = load_scorer(model_dir)
    records = [r for r in read_manifest(data) if r.split == split]
    cols = score_images(scorer, [load_gray(r.path) for r in records])
    label = np.array([r.label for r in records])
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
        "population": population_limits(values),
        "population_rule": (
            f"central {100 * (1 - 2 * TAIL):.1f}% of {split} X-rays, widened by "
            f"{100 * MARGIN:.0f}% of that range on each side"
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
    print(json.dumps({k: v for k, v in ref.items() if k != "features"}, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
