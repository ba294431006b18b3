"""``medsight calibrate vision``: re-fit "normal" from a new site's normal images only.

Recomputed from the site's normals: the patch coreset memory bank, the pooled kNN bank, every
component's z-score statistics, the heatmap scale and the OOD limit. Fusion weights and the Platt
slope/intercept stay as trained (they act on z-scores, which are now relative to the site).

Threshold without abnormal labels: the site's normals are cross-fitted (K folds; each fold is
scored against banks built from the other folds; kNN is leave-one-out; the VAE/ViT never saw
them), and the threshold is the ``SPECIFICITY_TARGET`` quantile of those held-out normals'
scores, i.e. about 95% of new normal patients fall below it. The moderate band starts at the
80th percentile of those scores (without labels there is no sensitivity to aim at).

Before fitting, each image is screened: one the shipped model's gate does not accept as a chest
X-ray is refused, and so is one that does not look normal *for this site*: its pooled features
are far from every other site image (leave-one-out kNN distance, robust z > ``OUTLIER_Z``).
The summary says how far the site is from the reference population (the shipped model's score,
feature distance and intensity statistics of the site's normals against the reference normals,
as the drift monitor measures them), and what reliability to expect. The calibration file also
carries the site's own reference for the drift monitor and the population check.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.ml.vision.checkpoint import save_calibration
from backend.ml.vision.fusion import anomaly_scores, fused_z, ood_scores, zscores
from backend.ml.vision.population import ACQUISITION
from backend.ml.vision.scorer import load_scorer

from .data import list_images, load_gray
from .features import extract_features
from .reference import embed_all, fit_normal_reference, pooled_deep

MIN_NORMALS = 50
SPECIFICITY_TARGET = 0.95
MODERATE_QUANTILE = 0.80
# A site image whose leave-one-out kNN distance to the other site images has a robust z above
# this does not look like the site's normals and is refused.
OUTLIER_Z = 5.0
# Fewest neighbours the site's kNN score averages over (one mislabelled "normal" must not be
# a whole neighbourhood).
MIN_SITE_KNN_K = 2


def site_knn_k(n_site: int, meta: dict[str, Any]) -> int:
    """k for a bank of n_site normals: the shipped k scaled to the same share of the bank.

    The shipped k (5) was chosen for 3000 training normals; averaging over 5 of only 60 site
    normals blurs the neighbourhood. On cxr-dev VAL, kNN AUROC with 60 normals: k=5 0.897 /
    0.913 / 0.906 on three disjoint sets, k=2 0.905 / 0.921 / 0.915; with 200: k=5 0.924-0.929,
    k=2 0.933-0.936.
    """
    k_ref = int(meta["knn_k"])
    n_ref = int(meta.get("training", {}).get("n_train_normals", n_site))
    return int(min(k_ref, max(MIN_SITE_KNN_K, round(k_ref * n_site / max(n_ref, 1)))))


class CalibrationRefused(ValueError):
    """Too few usable normal images remain after screening; the message lists why."""


def _screen(
    scorer: Any, paths: list[Path]
) -> tuple[list[Path], list[dict[str, Any]], dict[str, list[str]], dict[str, np.ndarray]]:
    """Score each image with the shipped reference: keep chest X-rays, refuse the rest."""
    kept: list[Path] = []
    results: list[dict[str, Any]] = []
    refused: dict[str, list[str]] = {"not_chest_xray": [], "unreadable": []}
    for i in range(0, len(paths), 16):
        batch = paths[i : i + 16]
        images = []
        for p in batch:
            try:
                images.append((p, load_gray(p)))
            except ValueError:
                refused["unreadable"].append(p.name)
        for (p, _), res in zip(images, scorer.score_batch([im for _, im in images]), strict=True):
            if not res.is_chest_xray:
                refused["not_chest_xray"].append(p.name)
                continue
            kept.append(p)
            results.append({"score": res.anomaly_score, **res.input_stats})
    cols = {k: np.array([r[k] for r in results]) for k in (results[0] if results else {})}
    return kept, results, refused, cols


def _site_distance(
    cols: dict[str, np.ndarray], shipped_ref: dict[str, Any] | None
) -> dict[str, Any]:
    """How far the site's normals are from the reference normals (the drift statistic, p = 1)."""
    from backend.monitoring.drift import FEATURES, DriftThresholds, drift_test

    if shipped_ref is None:
        return {"status": "unknown", "detail": "the model ships no reference population"}
    ref = {
        f: {
            "normal": shipped_ref["features"][f]["normal"],
            "abnormal": shipped_ref["features"][f]["normal"],
        }
        for f in FEATURES
    }
    window = {f: cols[f].tolist() for f in FEATURES if f in cols}
    test = drift_test(window, ref)
    t = DriftThresholds()
    level = (
        "near" if test.statistic < t.warning else "moderate" if test.statistic < t.drift else "far"
    )
    out: dict[str, Any] = {
        "status": level,
        "statistic": test.statistic,
        "thresholds": {"moderate": t.warning, "far": t.drift},
        "per_feature": test.per_feature,
        "site_means": test.window_means,
        "reference_normal_means": {
            f: round(float(np.mean(shipped_ref["features"][f]["normal"])), 4) for f in FEATURES
        },
    }
    limit = (shipped_ref.get("population") or {}).get(ACQUISITION)
    if limit is not None and ACQUISITION in cols:
        # The share of the site's normals the shipped acquisition check flags: films of a
        # population or acquisition the reference holds no normals of.
        out["acquisition_flagged"] = round(float(np.mean(cols[ACQUISITION] > limit["hi"])), 4)
    return out


def _expected_reliability(
    n: int, shipped_specificity: float, distance: dict[str, Any]
) -> dict[str, Any]:
    """What the site can expect, from its normals alone (no labels: no sensitivity claim)."""
    # Wilson 95% interval of the specificity the threshold targets, given n normals.
    z, p = 1.96, SPECIFICITY_TARGET
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    level = distance.get("status")
    note = {
        "near": "the site's normals look like the reference population: expect about the "
        "development performance (test AUROC 0.948)",
        "moderate": "the site differs measurably from the reference population: expect lower "
        "discrimination than in development; check with a few labelled local cases",
        "far": "the site is far from the reference population (other age group, projection or "
        "acquisition): discrimination is uncertain; validate on labelled local cases before use",
    }.get(str(level), "no reference population to compare with")
    return {
        "specificity_target": SPECIFICITY_TARGET,
        "specificity_95ci": [
            round(float(centre - half), 3),
            round(float(min(1.0, centre + half)), 3),
        ],
        "shipped_model_specificity_at_site": round(shipped_specificity, 3),
        "note": note,
    }


def _site_reference(
    scores: np.ndarray,
    feature_distance: np.ndarray,
    cols: dict[str, np.ndarray],
    source: str,
    shipped: dict[str, Any] | None,
) -> dict[str, Any]:
    """The site's normals as the drift monitor's (and the population check's) reference.

    The acquisition check's limit is widened by the site's normals, never tightened: a
    paediatric site's calibration stops its own films being flagged.
    """
    from training.vision.population import population_limits, upper_limit

    values = {
        "score": np.clip(scores, 0.0, 100.0),
        "feature_distance": feature_distance,
        "mean_intensity": cols["mean_intensity"],
        "std_intensity": cols["std_intensity"],
    }
    population: dict[str, dict[str, float]] = population_limits(values)
    shipped_limit = ((shipped or {}).get("population") or {}).get(ACQUISITION)
    if ACQUISITION in cols and shipped_limit is not None:
        site_hi = upper_limit(np.asarray(cols[ACQUISITION]))
        population[ACQUISITION] = {"hi": round(max(float(shipped_limit["hi"]), site_hi), 5)}
    return {
        "source": source,
        "features": {k: {"normal": np.round(np.sort(v), 5).tolist()} for k, v in values.items()},
        "population": population,
    }


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
    n_given = len(paths)
    paths, _, refused, cols = _screen(scorer, paths)
    if len(paths) < MIN_NORMALS:
        raise CalibrationRefused(_refusal(n_given, len(paths), refused))
    feats = extract_features(
        net.backbone, paths, image_size=meta["input_size"], desc="site normals"
    )
    # Not normal-looking for this site: far from every other site image (leave-one-out kNN).
    from .reference import knn_scores

    pooled = pooled_deep(feats["deep"])
    loo = knn_scores(pooled, pooled, meta["knn_k"], exclude_self=True)
    mad = float(np.median(np.abs(loo - np.median(loo)))) * 1.4826 + 1e-9
    robust_z = (loo - np.median(loo)) / mad
    keep = robust_z <= OUTLIER_Z
    refused["not_normal_looking"] = [p.name for p, k in zip(paths, keep, strict=True) if not k]
    if not keep.all():
        paths = [p for p, k in zip(paths, keep, strict=True) if k]
        feats = {k: v[keep] for k, v in feats.items()}
        cols = {k: v[keep] for k, v in cols.items()}
    if len(paths) < MIN_NORMALS:
        raise CalibrationRefused(_refusal(n_given, len(paths), refused))
    shipped_threshold = float(shipped["fusion"]["default"]["threshold"])
    shipped_specificity = float(np.mean(cols["score"] < shipped_threshold))
    distance = _site_distance(cols, scorer.reference)
    emb = embed_all(feats["mid"], feats["deep"])
    coreset = int(meta["training"].get("coreset_size", meta["dims"]["patch_bank"]))
    knn_k = site_knn_k(len(paths), meta)
    ref = fit_normal_reference(
        emb,
        pooled_deep(feats["deep"]),
        feats["pooled"],
        coreset_size=coreset,
        knn_k=knn_k,
        seed=seed,
        n_folds=n_folds,
        max_heldout=len(paths),
        progress=progress,
        matched_folds=True,
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
    # The z-statistics keep the shipped convention (its Platt map expects it); thresholds and
    # the drift reference use what new normals will score: patch distances to banks of the
    # final bank's size (see fit_normal_reference).
    as_new = {**heldout, "patch": ref["heldout_patch_matched"]}
    s_def, _ = anomaly_scores(as_new, cal, "default")
    s_pub, _ = anomaly_scores(as_new, cal, "published")
    for mode, s in (("default", s_def), ("published", s_pub)):
        thr = float(np.quantile(s, SPECIFICITY_TARGET))
        fusion[mode]["threshold"] = thr
        fusion[mode]["moderate_cut"] = float(min(thr, np.quantile(s, MODERATE_QUANTILE)))
        fusion[mode]["threshold_rule"] = (
            f"{SPECIFICITY_TARGET:.2f} quantile of cross-fitted site normals' scores"
        )
    fusion["published"]["normal_std"] = float(np.std(s_pub))
    z = zscores(heldout, stats)
    site_ood = {
        **shipped["ood"],
        "head_ref": float(max(shipped["ood"]["head_ref"], np.quantile(ref["heldout_ood"], 0.999))),
        "patch_ref": float(
            max(shipped["ood"]["patch_ref"], np.quantile(ref["heldout_patch"], 0.999))
        ),
    }
    heldout_distance = ood_scores(ref["heldout_ood"][idx], as_new["patch"], site_ood)
    source = f"site normals: {Path(normals_dir).name}"
    site_cols = {k: v[idx] for k, v in cols.items()}
    cal.update(
        {
            "source": source,
            "n_normals": len(paths),
            "n_refused": n_given - len(paths),
            "weights_sha256": scorer.weights_sha256,
            "patch_map": {"lo": ref["patch_lo"], "hi": ref["patch_hi"]},
            # Site normals only raise the X-ray references (they never tighten the gate: the
            # site's abnormal X-rays must still pass).
            "ood": site_ood,
            "reference": _site_reference(
                s_def, heldout_distance, site_cols, source, scorer.reference
            ),
            "site_distance": distance,
            "heldout_fused_z_mean": float(np.mean(fused_z(z, fusion["default"]["weights"]))),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "n_folds": n_folds,
            "knn_k": knn_k,
        }
    )
    sha = save_calibration(Path(out), ref["banks"], cal)
    summary = {
        "out": str(out),
        "sha256": sha,
        "created": cal["created"],
        "n_normals": len(paths),
        "n_given": n_given,
        "knn_k": knn_k,
        "refused": {k: v for k, v in refused.items() if v},
        "site_distance": distance,
        "expected_reliability": _expected_reliability(len(paths), shipped_specificity, distance),
        "threshold": fusion["default"]["threshold"],
        "published_threshold": fusion["published"]["threshold"],
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary, indent=2))  # noqa: T201 - CLI output
    return summary


def _refusal(n_given: int, n_kept: int, refused: dict[str, list[str]]) -> str:
    parts = [
        f"{len(v)} {k.replace('_', ' ')} ({', '.join(v[:5])}{', ...' if len(v) > 5 else ''})"
        for k, v in refused.items()
        if v
    ]
    return (
        f"site calibration needs >= {MIN_NORMALS} normal chest X-rays; {n_kept} of {n_given} "
        f"images are usable" + (f"; refused: {'; '.join(parts)}" if parts else "")
    )
