"""``medsight calibrate vision``: re-fit "normal" from a new site's normal images only.

Recomputed from the site's normals: the patch coreset memory bank, the pooled kNN bank, every
component's z-score statistics, the heatmap scale and the OOD limit. Fusion weights and the Platt
slope/intercept stay as trained (they act on z-scores, which are now relative to the site).

Threshold without abnormal labels: the site's normals are cross-fitted (K folds; each fold is
scored against banks built from the other folds; kNN is leave-one-out; the VAE/ViT never saw
them), and the threshold is the ``SPECIFICITY_TARGET`` quantile of those held-out normals'
scores, i.e. about 95% of new normal patients fall below it. The moderate band starts at the
80th percentile of those scores (without labels there is no sensitivity to aim at).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.ml.vision.checkpoint import save_calibration
from backend.ml.vision.fusion import anomaly_scores, fused_z, zscores
from backend.ml.vision.scorer import load_scorer

from .data import list_images
from .features import extract_features
from .reference import embed_all, fit_normal_reference, pooled_deep

MIN_NORMALS = 50
SPECIFICITY_TARGET = 0.95
MODERATE_QUANTILE = 0.80


def calibrate_vision(
    normals_dir: Path,
    out: Path,
    *,
    model_dir: Path | None = None,
    seed: int = 0,
    n_folds: int = 5,
    progress: bool = True,
) -> dict[str, Any]:
    """Write a calibration file for a new site from >= 50 of its normal images."""
    t0 = time.time()
    paths = list_images(Path(normals_dir))
    if len(paths) < MIN_NORMALS:
        raise ValueError(
            f"site calibration needs >= {MIN_NORMALS} normal images; "
            f"found {len(paths)} in {normals_dir}"
        )
    scorer = load_scorer(model_dir, backend="torch")
    meta, shipped = scorer.metadata, scorer.calibration
    net = scorer.net
    feats = extract_features(
        net.backbone, paths, image_size=meta["input_size"], desc="site normals"
    )
    emb = embed_all(feats["mid"], feats["deep"])
    coreset = int(meta["training"].get("coreset_size", meta["dims"]["patch_bank"]))
    ref = fit_normal_reference(
        emb,
        pooled_deep(feats["deep"]),
        feats["pooled"],
        coreset_size=coreset,
        knn_k=meta["knn_k"],
        seed=seed,
        n_folds=n_folds,
        max_heldout=len(paths),
        progress=progress,
    )
    with torch.no_grad():
        rec, kl, mu = net.vae.scores(torch.from_numpy(feats["pooled"]).float())
        vit = net.vit(mu)
    idx = ref["heldout_idx"]
    heldout = {
        "patch": ref["heldout_patch"],
        "knn": ref["heldout_knn"][idx],
        "recon": rec.numpy()[idx],
        "kl": kl.numpy()[idx],
        "vit": vit.numpy()[idx],
    }
    stats = {
        k: {"mean": float(np.mean(v)), "std": float(np.std(v) + 1e-9), "n": int(len(v))}
        for k, v in heldout.items()
    }
    fusion = json.loads(json.dumps(shipped["fusion"]))
    cal: dict[str, Any] = {"stats": stats, "fusion": fusion}
    s_def, _ = anomaly_scores(heldout, cal, "default")
    s_pub, _ = anomaly_scores(heldout, cal, "published")
    for mode, s in (("default", s_def), ("published", s_pub)):
        thr = float(np.quantile(s, SPECIFICITY_TARGET))
        fusion[mode]["threshold"] = thr
        fusion[mode]["moderate_cut"] = float(min(thr, np.quantile(s, MODERATE_QUANTILE)))
        fusion[mode]["threshold_rule"] = (
            f"{SPECIFICITY_TARGET:.2f} quantile of cross-fitted site normals' scores"
        )
    fusion["published"]["normal_std"] = float(np.std(s_pub))
    z = zscores(heldout, stats)
    cal.update(
        {
            "source": f"site normals: {Path(normals_dir).name}",
            "n_normals": len(paths),
            "weights_sha256": scorer.weights_sha256,
            "patch_map": {"lo": ref["patch_lo"], "hi": ref["patch_hi"]},
            # Site normals only raise the X-ray references (they never tighten the gate: the
            # site's abnormal X-rays must still pass).
            "ood": {
                **shipped["ood"],
                "head_ref": float(
                    max(shipped["ood"]["head_ref"], np.quantile(ref["heldout_ood"], 0.999))
                ),
                "patch_ref": float(
                    max(shipped["ood"]["patch_ref"], np.quantile(ref["heldout_patch"], 0.999))
                ),
            },
            "heldout_fused_z_mean": float(np.mean(fused_z(z, fusion["default"]["weights"]))),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "n_folds": n_folds,
        }
    )
    sha = save_calibration(Path(out), ref["banks"], cal)
    summary = {
        "out": str(out),
        "sha256": sha,
        "n_normals": len(paths),
        "threshold": fusion["default"]["threshold"],
        "published_threshold": fusion["published"]["threshold"],
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary, indent=2))  # noqa: T201 - CLI output
    return summary
