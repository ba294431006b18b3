"""From raw network outputs to calibrated components, the fused score and risk levels (numpy).

Score scale: every fusion mode produces a 0-100 ``anomaly_score``.

- ``default`` (ours): each component is z-scored against normal images (calibration stats),
  combined as a weighted sum ``f = sum_i w_i z_i`` (weights chosen on the validation split),
  and mapped to a probability of abnormality with Platt scaling fitted on validation:
  ``anomaly_score = 100 * sigmoid(a * f + b)``.
- ``published``: the published system's ``0.4*sigmoid(z_recon) + 0.2*sigmoid(z_kl) + 0.4*s_vit``,
  times 100.

Risk bands: ``HIGH`` iff score >= threshold (so below the calibrated threshold is never HIGH);
``MODERATE`` iff moderate_cut <= score < threshold; ``LOW`` otherwise. The shipped model puts
moderate_cut where VAL sensitivity reaches 95%; a site calibration (no labels) at the 80th
percentile of the site's cross-fitted normal scores. It is never above the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

COMPONENTS = ("patch", "knn", "recon", "kl", "vit")
FUSION_MODES = ("default", "published")
# Patch score = mean over the top fraction of patch distances. On cxr-dev VAL (mid+deep patches,
# 10k coreset) AUROC rose with the fraction: max 0.857, top 1% 0.873, top 10% 0.886, top 25% 0.894,
# all patches 0.915 - COVID and viral pneumonia are diffuse, so the whole map is used.
PATCH_TOP_FRACTION = 1.0

Arr = npt.NDArray[np.float64]


def sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def patch_score(patch_map: npt.NDArray[np.floating[Any]]) -> Arr:
    """(N, H, W) -> (N,): mean of the top ``PATCH_TOP_FRACTION`` of patch distances."""
    flat = np.asarray(patch_map, dtype=np.float64).reshape(len(patch_map), -1)
    k = max(1, int(round(flat.shape[1] * PATCH_TOP_FRACTION)))
    return np.asarray(np.sort(flat, axis=1)[:, -k:].mean(axis=1), dtype=np.float64)


def component_values(raw: dict[str, npt.NDArray[Any]]) -> dict[str, Arr]:
    """Network outputs -> one scalar per component per image."""
    return {
        "patch": patch_score(raw["patch_map"]),
        "knn": np.asarray(raw["knn"], np.float64),
        "recon": np.asarray(raw["recon"], np.float64),
        "kl": np.asarray(raw["kl"], np.float64),
        "vit": np.asarray(raw["vit"], np.float64),
    }


def zscores(values: dict[str, Arr], stats: dict[str, dict[str, float]]) -> dict[str, Arr]:
    return {
        k: (v - stats[k]["mean"]) / max(stats[k]["std"], 1e-12)
        for k, v in values.items()
        if k in stats
    }


def published_score(z: dict[str, Arr], vit: Arr) -> Arr:
    """The published fused score on the 0-100 scale."""
    out = 100.0 * (0.4 * sigmoid(z["recon"]) + 0.2 * sigmoid(z["kl"]) + 0.4 * vit)
    return np.asarray(out, dtype=np.float64)


def fused_z(z: dict[str, Arr], weights: dict[str, float]) -> Arr:
    return sum(w * z[k] for k, w in weights.items())  # type: ignore[return-value]


def anomaly_scores(
    values: dict[str, Arr], cal: dict[str, Any], mode: str = "default"
) -> tuple[Arr, dict[str, Arr]]:
    """Return (0-100 score per image, z-scores per component)."""
    z = zscores(values, cal["stats"])
    if mode == "published":
        return published_score(z, values["vit"]), z
    if mode != "default":
        raise ValueError(f"unknown fusion mode {mode!r}; choose one of {FUSION_MODES}")
    f = cal["fusion"]["default"]
    a, b = f["platt"]
    return 100.0 * sigmoid(a * fused_z(z, f["weights"]) + b), z


def risk_level(score: float, threshold: float, moderate_cut: float) -> str:
    if score >= threshold:
        return "HIGH"
    if score >= min(moderate_cut, threshold):
        return "MODERATE"
    return "LOW"


def model_confidence(fz: float, fz_threshold: float, in_distribution: bool) -> float:
    """0 at the decision threshold, towards 1 as the fused z moves away; quartered for OOD input."""
    conf = 1.0 - float(np.exp(-abs(fz - fz_threshold)))
    return conf if in_distribution else 0.25 * conf


def score_to_fz(score: float | Arr, platt: list[float]) -> Any:
    """Invert the Platt map: 0-100 score -> fused z."""
    p = np.clip(np.asarray(score, np.float64) / 100.0, 1e-9, 1 - 1e-9)
    a, b = platt
    return (np.log(p / (1 - p)) - b) / a


def ood_scores(head_dist: Any, patch: Any, ood: dict[str, Any]) -> Arr:
    """Out-of-distribution score: a weighted log-ratio of two distances to the normal X-ray
    references, each divided by its 99.9th percentile on real X-rays (normal and abnormal):
    the head descriptor's nearest-normal cosine distance (ImageNet semantics: "is this a
    photo?") and the mean patch distance (mid-level texture: "do these patches exist in any
    chest X-ray?"). 0 = at the X-ray tail on both; ``is_chest_xray`` iff score <= threshold.
    """
    h = np.maximum(np.asarray(head_dist, np.float64), 1e-9) / ood["head_ref"]
    p = np.maximum(np.asarray(patch, np.float64), 1e-9) / ood["patch_ref"]
    return ood["w_head"] * np.log(h) + ood["w_patch"] * np.log(p)  # type: ignore[no-any-return]
