"""Fixtures for the report tests: a realistic result around a real chest X-ray."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from backend.contract import AnalysisResult, load_result
from tests.unit.reports.sample import XRAY, sample


class Sample(NamedTuple):
    """A COMPLETE result as stored (schema 2 JSON) and as read, and the original X-ray PNG."""

    stored: dict[str, Any]
    result: AnalysisResult
    original: bytes


@pytest.fixture(scope="session")
def complete() -> Sample:
    """The sample result (skips without the shared data)."""
    if not XRAY.is_file():
        pytest.skip(f"shared data missing: {XRAY}")
    stored, original = sample()
    return Sample(stored, load_result(stored), original)
