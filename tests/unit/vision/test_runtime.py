from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from backend.ml.vision import VisionScorer, load_scorer
from backend.ml.vision.checkpoint import load_calibration, save_calibration

from .conftest import MODEL_DIR, SHARED


def test_onnx_matches_torch_within_a_tenth_of_a_point(tmp_path: Path, fixtures) -> None:
    pytest.importorskip("onnxruntime")
    torch_s = load_scorer(MODEL_DIR, backend="torch")
    onnx_s = load_scorer(MODEL_DIR, backend="onnx", onnx_cache_dir=tmp_path)
    assert onnx_s.backend == "onnx" and onnx_s.onnx_path().is_file()
    assert (
        onnx_s.weights_sha256[:8] in onnx_s.onnx_path().name
        or onnx_s.onnx_path().parent == tmp_path
    )
    images = [im for _, _, im in fixtures]
    a, b = torch_s.score_batch(images), onnx_s.score_batch(images)
    for ra, rb in zip(a, b, strict=True):
        assert abs(ra.anomaly_score - rb.anomaly_score) <= 0.1
        assert ra.risk_level == rb.risk_level or abs(ra.anomaly_score - ra.threshold) < 0.1
        assert np.abs(ra.heatmap - rb.heatmap).max() < 0.02
        assert ra.outside_population == rb.outside_population
        assert abs(ra.input_stats["acquisition"] - rb.input_stats["acquisition"]) < 1e-3
    # The graph's outputs are part of its cache key: a graph cached before an output was added
    # is rebuilt, not run without it.
    from backend.ml.vision.onnx_runtime import cache_path

    older = cache_path(tmp_path, onnx_s.weights_sha256, None, onnx_s.metadata["backbone"])
    assert onnx_s.onnx_path() != older
    # auto prefers ONNX Runtime on CPU and reuses the cached export; the service's thread
    # count (VISION_THREADS) reaches the session, and one thread scores the same.
    auto = load_scorer(MODEL_DIR, backend="auto", onnx_cache_dir=tmp_path, onnx_threads=1)
    assert auto.backend == "onnx"
    assert auto._onnx is not None
    assert auto._onnx.session.get_session_options().intra_op_num_threads == 1
    for ra, rc in zip(b, auto.score_batch(images), strict=True):
        assert abs(ra.anomaly_score - rc.anomaly_score) <= 1e-3


def test_calibration_file_round_trip(tmp_path: Path) -> None:
    banks = {
        "patch_bank": torch.randn(100, 152),
        "knn_bank": torch.randn(20, 112),
        "ood_bank": torch.randn(20, 1280),
    }
    cal = {
        "stats": {"patch": {"mean": 1.5, "std": 0.25}},
        "fusion": {"default": {"threshold": 42.0}},
    }
    f = tmp_path / "site.cal"
    sha = save_calibration(f, banks, cal)
    banks2, cal2, sha2 = load_calibration(f)
    assert cal2 == cal and sha2 == sha
    for k, v in banks.items():
        assert torch.allclose(banks2[k], v.half().float())


def _site_normals(dst: Path, n: int, split: str = "train") -> Path:
    """n normals from cxr-dev standing in for a new site's normal images.

    Training normals are inside the model's own normal banks (their distance to the nearest
    normal is zero), so a test of the site's distance from the reference uses TEST normals.
    """
    dst.mkdir()
    with (SHARED / "manifest.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split and r["label"] == "normal"]
    for r in rows[-n:]:
        shutil.copy(SHARED / "images" / f"{r['id']}.png", dst / f"{r['id']}.png")
    return dst


def test_site_calibration_refits_normal_and_is_used_by_the_scorer(tmp_path: Path, fixtures) -> None:
    from training.vision.calibrate import calibrate_vision

    if not (SHARED / "images").is_dir():
        pytest.skip("cxr-dev images not available")
    normals = _site_normals(tmp_path / "site", 60, split="test")
    # Not a chest X-ray: refused and listed; the normals are used (a few that look unlike the
    # other site images may be refused as not normal-looking).
    noise = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    assert cv2.imwrite(str(normals / "zz-noise.png"), noise)
    out = tmp_path / "site.cal"
    summary = calibrate_vision(normals, out, model_dir=MODEL_DIR, n_folds=3, progress=False)
    assert summary["n_given"] == 61
    assert summary["refused"]["not_chest_xray"] == ["zz-noise.png"]
    n_used = summary["n_normals"]
    assert 55 <= n_used <= 60
    assert n_used + len(summary["refused"].get("not_normal_looking", [])) == 60
    # Dev TEST normals are the reference population's own kind: near it, and the summary
    # says what reliability to expect.
    assert summary["site_distance"]["status"] == "near", summary["site_distance"]
    assert summary["site_distance"]["acquisition_flagged"] == 0.0  # adult films, reference-like
    expected = summary["expected_reliability"]
    assert expected["specificity_target"] == 0.95
    low, high = expected["specificity_95ci"]
    assert 0.8 < low < 0.95 < high <= 1.0
    banks, cal, sha = load_calibration(out)
    assert cal["reference"]["features"]["score"]["normal"] and cal["site_distance"]
    assert (
        cal["n_normals"] == n_used
        and banks["knn_bank"].shape[0] == n_used
        and banks["ood_bank"].shape[0] == n_used
    )
    assert 0 < cal["fusion"]["default"]["threshold"] < 100
    assert cal["fusion"]["default"]["threshold"] == pytest.approx(summary["threshold"])
    site = load_scorer(MODEL_DIR, calibration=out, backend="torch")
    assert site.calibration["source"].startswith("site normals")
    assert torch.equal(
        site.net.knn_bank, torch.nn.functional.normalize(banks["knn_bank"].float(), dim=1)
    )
    assert torch.equal(site.net.patch_bank, banks["patch_bank"].float())
    # About 60 normals: the kNN score averages over 2 neighbours, not the shipped 5.
    assert cal["knn_k"] == summary["knn_k"] == site.net.knn_k == 2
    res = site.score_batch([im for _, _, im in fixtures])
    assert all(r.threshold == pytest.approx(cal["fusion"]["default"]["threshold"]) for r in res)
    # Every result's provenance names the calibration: file hash, date, number of normals.
    info = site.calibration_info
    assert info["kind"] == "site" and info["sha256"] == sha and info["n_normals"] == n_used
    assert info["created"] == summary["created"] and info["id"] == f"site:{sha[:16]}"
    assert site.reference_id == info["id"]
    # The site reference is what the site's *new* normals look like: 120 other TEST normals,
    # never seen by the calibration, leave the drift monitor ok against it (statistic 1.37).
    # Cross-fitted fold banks smaller than the final bank scored held-out normals too high,
    # and the same 120 normals read as a warning (1.94).
    from backend.monitoring.drift import drift_test
    from training.vision.robustness import as_reference_features, score_images

    with (SHARED / "manifest.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test" and r["label"] == "normal"]
    unseen = [cv2.imread(str(SHARED / "images" / f"{r['id']}.png"), 0) for r in rows[:120]]
    window = as_reference_features(score_images(site, unseen))
    got = drift_test(window, site.reference["features"])
    assert got.status == "ok", got
    # The environment variable route used by the service.
    import os

    os.environ["VISION_CALIBRATION"] = str(out)
    try:
        assert load_scorer(MODEL_DIR, backend="torch").calibration_sha256 == site.calibration_sha256
    finally:
        del os.environ["VISION_CALIBRATION"]


def test_calibration_needs_fifty_normals(tmp_path: Path) -> None:
    from training.vision.calibrate import calibrate_vision

    if not (SHARED / "images").is_dir():
        pytest.skip("cxr-dev images not available")
    with pytest.raises(ValueError, match=">= 50"):
        calibrate_vision(
            _site_normals(tmp_path / "few", 10), tmp_path / "x.cal", model_dir=MODEL_DIR
        )


def test_calibration_for_other_weights_is_rejected(tmp_path: Path) -> None:
    cal = {"weights_sha256": "0" * 64, "stats": {}, "fusion": {}}
    f = tmp_path / "other.cal"
    banks = {
        "patch_bank": torch.randn(10, 152),
        "knn_bank": torch.randn(10, 112),
        "ood_bank": torch.randn(10, 1280),
    }
    save_calibration(f, banks, cal)
    with pytest.raises(ValueError, match="rerun `medsight calibrate vision`"):
        load_scorer(MODEL_DIR, calibration=f, backend="torch")


def test_natural_and_synthetic_non_xrays_are_flagged(scorer: VisionScorer, fixtures) -> None:
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)  # colour photos (china.jpg, flower.jpg)
    gray_photos = [np.asarray(p.mean(axis=2), np.uint8) for p in photos]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    synthetic = [
        rng.integers(0, 256, (256, 256), dtype=np.uint8),  # noise
        ((xx + yy) / 2).astype(np.uint8),  # gradient
        np.where(((xx // 32) + (yy // 32)) % 2 == 0, 230, 20).astype(np.uint8),  # checkerboard
    ]
    for r in scorer.score_batch(photos + gray_photos + synthetic):
        assert not r.is_chest_xray, r.ood_score
    assert all(r.is_chest_xray for r in scorer.score_batch([im for _, _, im in fixtures]))


def test_component_table_weights_real_component_scores(scorer: VisionScorer, fixtures) -> None:
    """The patch / kNN weighting table of the robustness report, on the fixtures' real scores:
    weight 1 ranks like the patch component, weight 0 like kNN, and a shift row is summarised."""
    from training.vision.robustness import PATCH_WEIGHTS, component_table, score_images
    from training.vision.shifts import SHIFTS

    images = [im for _, _, im in fixtures]
    labels = [int(f != "Normal") for _, f, _ in fixtures]
    assert 0 < sum(labels) < len(labels)
    shifts = ("none", "blur sigma 2 px")
    report = {
        "split": "fixtures",
        "label": labels,
        "stats": scorer.calibration["stats"],
        "shifts": {
            name: {
                "per_image": {
                    k: v.tolist()
                    for k, v in score_images(
                        scorer, [SHIFTS[name](im, i) for i, im in enumerate(images)]
                    ).items()
                }
            }
            for name in shifts
        },
    }
    table = component_table(report)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert set(rows) == {*shifts, "mean of the shifts", "worst shift"}
    for name in shifts:
        cells = [float(c) for c in rows[name].strip("| ").split(" | ")[1:]]
        assert len(cells) == 2 + len(PATCH_WEIGHTS)
        patch, knn, by_weight = cells[0], cells[1], dict(zip(PATCH_WEIGHTS, cells[2:], strict=True))
        assert by_weight[1.0] == patch and by_weight[0.0] == knn
        assert all(0.0 <= c <= 1.0 for c in cells)

    # One shifted row: its mean and its worst are that row.
    def row_cells(name: str) -> list[str]:
        return rows[name].split(" | ")[1:]

    assert (
        row_cells("mean of the shifts") == row_cells("blur sigma 2 px") == row_cells("worst shift")
    )


def test_robustness_report_keeps_the_statistics_it_scored_with(tmp_path: Path, fixtures) -> None:
    """The CLI path: a robustness run writes the z-statistics of the scorer it used (a site's
    own with --calibration), and `components` reads the table from that report alone."""
    import json
    import subprocess
    import sys

    from .conftest import FIXTURES, ROOT

    out = tmp_path / "r.json"
    run = [sys.executable, "-m", "training.vision.robustness"]
    subprocess.run(
        [*run, "--data", str(FIXTURES), "--split", "test", "--shifts", "none", "--out", str(out)]
        + ["--model-dir", str(MODEL_DIR)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    report = json.loads(out.read_text())
    assert report["stats"] == load_scorer(MODEL_DIR, backend="torch").calibration["stats"]
    table = subprocess.run(
        [*run, "components", str(out)], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    assert table.splitlines()[0].startswith("| shift (test, n = 6) | patch | kNN |")
    assert table.splitlines()[2].startswith("| none | ")
