"""The reference population beside the weights (``reference.json``): drift and population checks.

``reference.json`` holds, for the monitored features (the anomaly score, the mean and standard
deviation of the input's intensities, its feature distance to the normal reference), the values
of the model's own validation images, normals and abnormals separately (never the test split),
and the range of each input feature that counts as "inside the reference population". Built by
``python -m training.vision.population``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REFERENCE_FILE = "reference.json"
REFERENCE_FORMAT = "medsight-vision-reference/1"
# The input features the population check looks at (the score is not one: disease moves it).
POPULATION_FEATURES = ("feature_distance", "mean_intensity", "std_intensity")
# A fourth, learned one: how much the image's pooled stage-5 descriptor looks like films the
# reference has no normals of (a linear model fitted on the validation split, with the
# paediatric films of another hospital as the positive class; see ``training/vision/
# population.py``). Only an upper limit applies. It is not a drift feature.
ACQUISITION = "acquisition"


def input_statistics(x: npt.NDArray[np.float32]) -> list[dict[str, float]]:
    """Mean and standard deviation of each prepared network input (N, 1, S, S) in 0-1."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return [
        {"mean_intensity": float(m), "std_intensity": float(s)}
        for m, s in zip(flat.mean(axis=1), flat.std(axis=1), strict=True)
    ]


def acquisition_values(
    descriptors: npt.NDArray[np.floating[Any]], reference: dict[str, Any] | None
) -> npt.NDArray[np.float64] | None:
    """The acquisition model's value per descriptor row.

    None when the reference has no model, or one fitted on another backbone's descriptor (a
    VGG16 checkpoint's is 512-d): the check is skipped rather than the image left unscored.
    """
    model = (reference or {}).get(ACQUISITION)
    if model is None:
        return None
    weights = np.asarray(model["weights"], dtype=np.float64)
    rows = np.asarray(descriptors, np.float64)
    if rows.ndim != 2 or rows.shape[1] != weights.shape[0]:
        return None
    out: npt.NDArray[np.float64] = rows @ weights
    return out + float(model["bias"])


def load_reference(model_dir: Path) -> dict[str, Any] | None:
    """The checkpoint's reference population, or None when it ships without one."""
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != REFERENCE_FORMAT:
        raise ValueError(f"{path} is not a MedSight vision reference ({REFERENCE_FORMAT})")
    return data


def site_reference(
    shipped: dict[str, Any] | None, site: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A site calibration's reference: its normals replace the shipped normals.

    A site calibration has no abnormal images; the shipped abnormals stay as the abnormal part
    (an approximation for the score, whose scale the site's threshold moves).
    """
    if site is None:
        return shipped
    if shipped is None:
        return site
    features = {
        name: {
            "normal": site["features"][name]["normal"],
            "abnormal": shipped["features"].get(name, {}).get("abnormal", []),
        }
        for name in site["features"]
    }
    population = {**shipped.get("population", {}), **site.get("population", {})}
    if ACQUISITION not in site.get("population", {}):
        # A calibration made before the acquisition check: its normals' range is unknown, and
        # the shipped limit would flag a paediatric site's every film.
        population.pop(ACQUISITION, None)
    return {**shipped, **site, "features": features, "population": population}


def outside_population(
    stats: dict[str, float], reference: dict[str, Any] | None
) -> tuple[str, ...]:
    """The input features outside the reference population's range (empty: inside)."""
    if reference is None:
        return ()
    limits = reference.get("population", {})
    out = []
    for name in (*POPULATION_FEATURES, ACQUISITION):
        value, limit = stats.get(name), limits.get(name)
        if value is None or limit is None:
            continue
        lo, hi = limit.get("lo"), limit.get("hi")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            out.append(name)
    return tuple(out)


def describe_outside(names: tuple[str, ...], stats: dict[str, float]) -> str:
    """A person-readable reason for the population warning."""
    words = {
        "feature_distance": "its image features are unlike the reference X-rays",
        "mean_intensity": f"its brightness ({stats.get('mean_intensity', 0):.2f}) is unusual",
        "std_intensity": f"its contrast ({stats.get('std_intensity', 0):.2f}) is unusual",
        ACQUISITION: (
            "it looks like films of a population or acquisition the reference holds no "
            "normals of, as children's X-rays from another hospital do"
        ),
    }
    return "; ".join(words.get(n, n) for n in names)


def reference_id(weights_sha256: str, calibration_sha256: str | None) -> str:
    """The drift window's key: a site calibration starts its own window."""
    if calibration_sha256:
        return f"site:{calibration_sha256[:16]}"
    return f"shipped:{weights_sha256[:16]}"


def calibration_provenance(
    metadata: dict[str, Any], calibration: dict[str, Any], calibration_sha256: str | None
) -> dict[str, Any]:
    """What every result records about the reference in force (Provenance.calibration)."""
    rid = reference_id(metadata["weights_sha256"], calibration_sha256)
    if calibration_sha256 is None:
        return {
            "kind": "shipped",
            "id": rid,
            "source": calibration.get("source", "the model's training normals"),
            "n_normals": calibration.get("n_normals"),
        }
    return {
        "kind": "site",
        "id": rid,
        "sha256": calibration_sha256,
        "created": calibration.get("created"),
        "n_normals": calibration.get("n_normals"),
        "source": calibration.get("source"),
    }


def resolve_reference(
    model_dir: Path | None, calibration: Path | None
) -> tuple[str, dict[str, Any] | None]:
    """(reference id, reference population) in force, without loading the network."""
    from .checkpoint import METADATA_FILE, read_calibration_meta
    from .scorer import DEFAULT_MODEL_DIR

    model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    meta = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    reference = load_reference(model_dir)
    if calibration is None:
        return reference_id(meta["weights_sha256"], None), reference
    cal, sha = read_calibration_meta(Path(calibration))
    site = site_reference(reference, cal.get("reference"))
    return reference_id(meta["weights_sha256"], sha), site
