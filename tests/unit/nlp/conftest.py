"""Shared fixtures for the NLP tests: data dir, and the extractor built once per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
NEGATION_SET = REPO / "tests" / "data" / "negation" / "negation_uncertainty.jsonl"


def shared_data() -> Path:
    """``$MEDSIGHT_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("MEDSIGHT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data()
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d}")
    return d


@pytest.fixture(scope="session")
def extractor() -> Any:
    """Rules + ConText extractor without the NER model (fast, no torch)."""
    from backend.ml.nlp.extraction import EntityExtractor

    return EntityExtractor(None)
