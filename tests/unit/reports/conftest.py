"""Fixtures for the report tests: a realistic result around a real chest X-ray."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.reports.sample import XRAY, sample


@pytest.fixture(scope="session")
def complete() -> tuple[dict[str, Any], bytes]:
    """A COMPLETE result and the original X-ray PNG (skips without the shared data)."""
    if not XRAY.is_file():
        pytest.skip(f"shared data missing: {XRAY}")
    return sample()
