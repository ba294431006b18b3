"""The per-image population check's acquisition model, on real X-rays and the shipped reference.

The model (``reference.json``, fitted on the VAL split by ``training.vision.population``) flags
films that look like the paediatric films of another hospital rather than the adult reference
X-rays. The six real fixtures are TEST images, which the fit never saw: two paediatric viral
pneumonia films, two adult normals and two adult COVID films.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from backend.ml.vision import VisionScorer
from backend.ml.vision.population import (
    ACQUISITION,
    POPULATION_FEATURES,
    acquisition_values,
    describe_outside,
    load_reference,
    outside_population,
    site_reference,
)

from .conftest import MODEL_DIR


def test_paediatric_films_are_flagged_and_adult_ones_are_not(
    scorer: VisionScorer, fixtures
) -> None:
    results = scorer.score_batch([im for _, _, im in fixtures])
    limit = scorer.reference["population"][ACQUISITION]["hi"]
    for (fid, finding, _), res in zip(fixtures, results, strict=True):
        paediatric = finding == "Viral Pneumonia"
        assert (ACQUISITION in res.outside_population) == paediatric, (fid, res.input_stats)
        assert (res.input_stats[ACQUISITION] > limit) == paediatric
        # Outside the reference population the score's distance from the threshold is in the
        # reference's units: the confidence says at most 50% (a child's film read 100%).
        if paediatric:
            assert res.model_confidence <= 0.5
        # Only the acquisition check tells these films apart: the three input statistics
        # keep every fixture inside (the VAL range they come from holds children too).
        assert not set(res.outside_population) & set(POPULATION_FEATURES), fid
    child = next(
        r for (_, f, _), r in zip(fixtures, results, strict=True) if f == "Viral Pneumonia"
    )
    reason = describe_outside((ACQUISITION,), child.input_stats)
    assert "holds no normals of" in reason and "children" in reason


def test_the_shipped_reference_records_how_the_check_was_fitted() -> None:
    ref = load_reference(MODEL_DIR)
    assert ref is not None
    model = ref[ACQUISITION]
    assert len(model["weights"]) == 112  # the pooled stage-5 descriptor
    assert model["n_positive"] == 75 and model["n_negative"] == 600  # the VAL split only
    # Cross-validated on VAL: no adult film above the limit, most paediatric films above it.
    assert model["cross_validated"]["negatives_above_limit"] == 0.0
    assert model["cross_validated"]["positives_above_limit"] > 0.9
    assert set(ref["population"][ACQUISITION]) == {"hi"}  # only an upper limit


def test_a_descriptor_of_another_backbone_skips_the_check() -> None:
    ref = load_reference(MODEL_DIR)
    assert acquisition_values(np.full((2, 112), 0.09), ref) is not None
    assert acquisition_values(np.full((2, 512), 0.04), ref) is None  # VGG16's pool4 descriptor
    assert acquisition_values(np.full((2, 112), 0.09), None) is None


def _inside_values(ref: dict) -> dict[str, float]:
    return {
        name: (lim["lo"] + lim["hi"]) / 2
        for name, lim in ref["population"].items()
        if name in POPULATION_FEATURES
    }


def test_a_site_calibration_sets_the_limit_and_an_older_one_drops_it() -> None:
    shipped = load_reference(MODEL_DIR)
    assert shipped is not None
    site = {
        "source": "site normals: test",
        "features": {k: {"normal": v["normal"]} for k, v in shipped["features"].items()},
        "population": {k: v for k, v in shipped["population"].items() if k != ACQUISITION},
    }
    child = {**_inside_values(shipped), ACQUISITION: shipped["population"][ACQUISITION]["hi"] + 5}
    assert outside_population(child, shipped) == (ACQUISITION,)
    # A calibration made before the check has no limit of its own: the shipped one would flag
    # every film of a paediatric site, so none applies.
    older = site_reference(shipped, copy.deepcopy(site))
    assert ACQUISITION not in older["population"]
    assert outside_population(child, older) == ()
    # A current calibration carries the site's limit, which replaces the shipped one.
    site["population"][ACQUISITION] = {"hi": child[ACQUISITION] + 1}
    current = site_reference(shipped, site)
    assert current["population"][ACQUISITION]["hi"] == pytest.approx(child[ACQUISITION] + 1)
    assert outside_population(child, current) == ()
    assert current[ACQUISITION] == shipped[ACQUISITION]  # the model itself stays the shipped one


def test_calibrating_on_paediatric_films_stops_flagging_that_site(
    tmp_path: Path, scorer: VisionScorer
) -> None:
    """A children's hospital that calibrates on its own films no longer gets the warning.

    No paediatric normals are available here, so 60 TEST paediatric viral-pneumonia films stand
    in for the site's films (what is tested is the limit, not the site's threshold); the other
    15 are that site's new films.
    """
    import csv

    import cv2

    from training.vision.calibrate import calibrate_vision

    from .conftest import SHARED

    if not (SHARED / "images").is_dir():
        pytest.skip("cxr-dev images not available")
    with (SHARED / "manifest.csv").open() as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["split"] == "test" and r["finding"] == "Viral Pneumonia"
        ]
    rows.sort(key=lambda r: r["id"])
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    for r in rows[:60]:
        (site_dir / f"{r['id']}.png").symlink_to(SHARED / "images" / f"{r['id']}.png")
    new = [cv2.imread(str(SHARED / "images" / f"{r['id']}.png"), 0) for r in rows[60:]]
    before = scorer.score_batch(new)
    assert np.mean([ACQUISITION in r.outside_population for r in before]) >= 0.7  # 12 of 15
    out = tmp_path / "site.cal"
    summary = calibrate_vision(site_dir, out, model_dir=MODEL_DIR, n_folds=3, progress=False)
    # The summary says how many of the site's films the shipped reference would flag.
    assert summary["site_distance"]["acquisition_flagged"] >= 0.8
    assert summary["site_distance"]["status"] == "far"
    from backend.ml.vision import load_scorer
    from backend.ml.vision.checkpoint import load_calibration

    _, cal, _ = load_calibration(out)
    shipped_hi = scorer.reference["population"][ACQUISITION]["hi"]
    assert cal["reference"]["population"][ACQUISITION]["hi"] > shipped_hi  # widened by the site
    site = load_scorer(MODEL_DIR, calibration=out, backend="torch")
    after = site.score_batch(new)
    assert np.mean([ACQUISITION in r.outside_population for r in after]) <= 0.2  # 0 of 15
