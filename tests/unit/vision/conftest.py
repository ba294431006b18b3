from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from backend.ml.vision import VisionScorer, load_scorer

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "data" / "cxr-dev"
FIXTURES = SHARED / "fixtures"
MODEL_DIR = Path(os.environ.get("VISION_TEST_MODEL_DIR", ROOT / "models" / "vision" / "v1"))


def _load(path: Path) -> np.ndarray:
    from training.vision.data import load_gray

    return load_gray(path)


@pytest.fixture(scope="session")
def fixtures() -> list[tuple[str, str, np.ndarray]]:
    """(id, finding, image) for the 6 real fixtures."""
    if not FIXTURES.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES}")
    with (FIXTURES / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return [(r["id"], r["finding"], _load(FIXTURES / f"{r['id']}.png")) for r in rows]


@pytest.fixture(scope="session")
def scorer() -> VisionScorer:
    return load_scorer(MODEL_DIR, backend="torch")
