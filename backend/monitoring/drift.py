"""The drift statistic: a window of recent analyses against the reference population.

The reference holds, per monitored feature (the anomaly score, the input's mean and standard
deviation of intensity, its feature distance to the normal reference), the values of the
model's own validation images: normals and abnormals separately. A site sees an unknown and
changing share of abnormal patients, and that alone is not drift; so the window is compared
with the mixture ``p * normals + (1 - p) * abnormals`` that fits it best (p on a 0.05 grid, one
p shared by every feature), and the statistic is the largest Kolmogorov-Smirnov distance of any
feature to that mixture, scaled by the effective sample size: ``D * sqrt(n m / (n + m))``.
Under no drift it follows the Kolmogorov distribution (roughly; fitting p only lowers it), so
the status thresholds are its critical values, Bonferroni-corrected for the features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FEATURES: tuple[str, ...] = ("score", "feature_distance", "mean_intensity", "std_intensity")
# Family-wise false-alarm rates of the two levels (per check, window drawn from the reference).
WARNING_ALPHA = 0.01
DRIFT_ALPHA = 0.001
_P_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)

Array = npt.NDArray[np.float64]


def ks_critical(alpha: float, n_features: int = len(FEATURES)) -> float:
    """Asymptotic critical value of sqrt(n_eff) * D at family-wise level alpha (Bonferroni)."""
    return math.sqrt(-0.5 * math.log(alpha / (2.0 * n_features)))


@dataclass(frozen=True)
class DriftThresholds:
    warning: float = field(default_factory=lambda: round(ks_critical(WARNING_ALPHA), 3))
    drift: float = field(default_factory=lambda: round(ks_critical(DRIFT_ALPHA), 3))


@dataclass(frozen=True)
class DriftTest:
    status: str  # ok | warning | drift
    statistic: float
    normal_fraction: float  # the best-fitting p
    per_feature: dict[str, float]  # sqrt(n_eff) * D of each feature at that p
    window_means: dict[str, float]
    reference_means: dict[str, float]


def _ecdf(sorted_ref: Array, points: Array) -> Array:
    return np.searchsorted(sorted_ref, points, side="right") / max(len(sorted_ref), 1)


def _mixture_ks(window: Array, normal: Array, abnormal: Array) -> Array:
    """D of `window` against every mixture on the p grid (one value per p)."""
    w = np.sort(window)
    n = len(w)
    # The sup of |F_w - F_mix| is reached at a window or reference point; checking window points
    # from both sides (F_w just before and at each point) and the reference points covers it.
    points = np.unique(np.concatenate([w, normal, abnormal]))
    fw = np.searchsorted(w, points, side="right") / n
    fw_left = np.searchsorted(w, points, side="left") / n
    fn, fa = _ecdf(normal, points), _ecdf(abnormal, points)
    fn_left = np.searchsorted(normal, points, side="left") / max(len(normal), 1)
    fa_left = np.searchsorted(abnormal, points, side="left") / max(len(abnormal), 1)
    out = np.empty(len(_P_GRID))
    for i, p in enumerate(_P_GRID):
        fm = p * fn + (1 - p) * fa
        fm_left = p * fn_left + (1 - p) * fa_left
        out[i] = max(float(np.max(np.abs(fw - fm))), float(np.max(np.abs(fw_left - fm_left))))
    return out


def drift_test(
    window: Mapping[str, Sequence[float]],
    reference: Mapping[str, Mapping[str, Sequence[float]]],
    thresholds: DriftThresholds | None = None,
) -> DriftTest:
    """Compare the window's features with the reference mixture; see the module docstring."""
    thresholds = thresholds or DriftThresholds()
    features = [f for f in FEATURES if f in reference and f in window and len(window[f]) > 0]
    if not features:
        raise ValueError("no monitored feature is present in both the window and the reference")
    per_p: dict[str, Array] = {}
    scale: dict[str, float] = {}
    for f in features:
        w = np.asarray(window[f], dtype=np.float64)
        w = w[np.isfinite(w)]
        normal = np.sort(np.asarray(reference[f]["normal"], dtype=np.float64))
        abnormal = np.sort(np.asarray(reference[f]["abnormal"], dtype=np.float64))
        m = len(normal) + len(abnormal)
        scale[f] = math.sqrt(len(w) * m / (len(w) + m))
        per_p[f] = _mixture_ks(w, normal, abnormal) * scale[f]
    stacked = np.vstack([per_p[f] for f in features])
    worst = stacked.max(axis=0)
    best = int(np.argmin(worst))
    statistic = float(worst[best])
    if statistic >= thresholds.drift:
        status = "drift"
    elif statistic >= thresholds.warning:
        status = "warning"
    else:
        status = "ok"
    return DriftTest(
        status=status,
        statistic=round(statistic, 4),
        normal_fraction=float(_P_GRID[best]),
        per_feature={f: round(float(per_p[f][best]), 4) for f in features},
        window_means={f: round(float(np.nanmean(window[f])), 4) for f in features},
        reference_means={f: round(_pooled_mean(reference[f]), 4) for f in features},
    )


def _pooled_mean(parts: Mapping[str, Sequence[float]]) -> float:
    values = [float(v) for part in ("normal", "abnormal") for v in parts.get(part, [])]
    return float(np.mean(values)) if values else float("nan")
