"""The drift statistic on the shipped reference (models/vision/v1/reference.json).

The end-to-end behaviour (real X-rays through the app) is in tests/integration/test_drift.py;
these pin the statistic's properties: a change in the share of abnormal patients is not drift,
a change in the inputs is.
"""

from __future__ import annotations

import json

import numpy as np

from backend.ml.vision.scorer import DEFAULT_MODEL_DIR
from backend.monitoring.drift import FEATURES, DriftThresholds, drift_test, ks_critical

REFERENCE = json.loads((DEFAULT_MODEL_DIR / "reference.json").read_text())["features"]


def window(n_normal: int, n_abnormal: int, seed: int = 0) -> dict[str, list[float]]:
    """Reference images themselves, drawn without replacement (one row per image)."""
    rng = np.random.default_rng(seed)
    normal = rng.choice(len(REFERENCE["score"]["normal"]), n_normal, replace=False)
    abnormal = rng.choice(len(REFERENCE["score"]["abnormal"]), n_abnormal, replace=False)
    # Each feature list is sorted in the file, so rows are not images; per feature that is
    # still a sample of the right marginal distribution, which is all the test compares.
    return {
        f: [REFERENCE[f]["normal"][i] for i in normal]
        + [REFERENCE[f]["abnormal"][i] for i in abnormal]
        for f in FEATURES
    }


def test_thresholds_are_the_bonferroni_kolmogorov_critical_values() -> None:
    t = DriftThresholds()
    assert t.warning == round(ks_critical(0.01), 3) and t.drift == round(ks_critical(0.001), 3)
    assert 1.7 < t.warning < t.drift < 2.3


def test_any_case_mix_of_the_reference_is_ok() -> None:
    for n_normal, n_abnormal in ((24, 0), (40, 0), (20, 20), (5, 35), (0, 40)):
        result = drift_test(window(n_normal, n_abnormal), REFERENCE)
        assert result.status == "ok", (n_normal, n_abnormal, result)
    assert drift_test(window(40, 0), REFERENCE).normal_fraction >= 0.8
    assert drift_test(window(0, 40), REFERENCE).normal_fraction <= 0.2


def test_darker_inputs_are_drift_and_the_feature_is_named() -> None:
    shifted = window(30, 10)
    shifted["mean_intensity"] = [v - 0.12 for v in shifted["mean_intensity"]]
    result = drift_test(shifted, REFERENCE)
    assert result.status == "drift"
    assert max(result.per_feature, key=lambda f: result.per_feature[f]) == "mean_intensity"


def test_scores_all_high_with_normal_looking_inputs_is_not_hidden_by_the_mixture() -> None:
    # Every score pinned at 99 (a miscalibrated site) while inputs look like the normals: no
    # mixture of the reference explains both, so the window is flagged.
    w = window(40, 0)
    w["score"] = [99.0] * 40
    assert drift_test(w, REFERENCE).status in {"warning", "drift"}
