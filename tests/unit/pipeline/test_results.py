"""Result access rules: unfinished analyses are a 409, failed ones still have a result."""

from __future__ import annotations

import pytest

from backend.analysis.pipeline import json_safe
from backend.analysis.service import finished_result
from backend.db.base import utcnow
from backend.db.models import Analysis
from backend.errors import ConflictError


def analysis(status: str, **kw: object) -> Analysis:
    return Analysis(
        id="a1",
        owner_key="anonymous",
        image_key="k",
        image_sha256="0" * 64,
        image_format="png",
        image_width=256,
        image_height=256,
        status=status,
        created_at=utcnow(),
        **kw,
    )


@pytest.mark.parametrize("status", ["queued", "running", "cancelled"])
def test_unfinished_or_cancelled_analysis_is_409(status: str) -> None:
    with pytest.raises(ConflictError) as info:
        finished_result(analysis(status))
    assert info.value.status_code == 409


def test_failed_analysis_without_result_still_answers_with_the_reason() -> None:
    result = finished_result(analysis("failed", error="worker stopped during attempt 3"))
    assert result.overall_status == "FAILED"
    assert "worker stopped" in result.report_text and result.warnings
    assert result.session_id == "a1" and result.vision is None


def test_non_finite_numbers_become_null() -> None:
    value = json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}})
    assert value == {"a": None, "b": [1.0, None], "c": {"d": None}}
