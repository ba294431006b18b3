"""What every report format says, read from the analysis result."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.reports.content import build_content, missing_reason
from tests.unit.reports.sample import partial

Sample = tuple[dict[str, Any], bytes]


def test_complete_result_has_no_missing_parts(complete: Sample) -> None:
    content = build_content(complete[0])
    assert content.status == "COMPLETE"
    assert content.missing == {}
    assert content.heatmap_png is not None and content.heatmap_png.startswith(b"\x89PNG")
    assert content.final_risk == "HIGH"
    assert "Anomaly score 78.4/100 (threshold 55.0): HIGH image risk." in content.conclusion
    assert "Negated in the text: tuberculosis, fever." in content.conclusion
    assert content.recommendations[0] == "Prioritise review of this study by a radiologist."
    assert [e.text for e in content.entities if e.negated] == ["tuberculosis", "fever"]
    assert content.provenance.threshold == 55.0
    assert [m.role for m in content.provenance.models] == ["nlp", "vision"]


def test_partial_result_names_missing_parts_with_pipeline_reasons(complete: Sample) -> None:
    content = build_content(partial(complete[0], "vision", "fusion"))
    assert set(content.missing) == {"vision", "fusion"}
    assert content.missing["vision"].startswith("vision stage failed")
    assert content.heatmap_png is None and content.heatmap_missing == content.missing["vision"]
    assert content.final_risk is None
    assert "Image analysis not available: vision stage failed" in content.conclusion
    assert any("Incomplete analysis" in r for r in content.recommendations)
    assert content.recommendations[0].startswith("No risk level could be computed")


def test_fused_risk_outranks_image_risk(complete: Sample) -> None:
    result = copy.deepcopy(complete[0])
    result["fusion"]["final_risk"] = "moderate"
    result["fusion"]["disagreement"] = True
    content = build_content(result)
    assert content.final_risk == "MODERATE"
    assert any("disagree" in r for r in content.recommendations)


def test_bad_heatmap_is_reported_missing_not_raised(complete: Sample) -> None:
    result = copy.deepcopy(complete[0])
    result["vision"]["heatmap_base64"] = "not base64 at all!"
    content = build_content(result)
    assert content.heatmap_png is None
    assert content.heatmap_missing == "the heatmap is not valid base64"


def test_missing_reason_prefers_a_warning_about_the_part() -> None:
    warnings = ("fusion skipped: vision unavailable", "vision stage failed: timeout")
    assert missing_reason(warnings, "vision") == "vision stage failed: timeout"
    assert missing_reason(warnings, "fusion") == "fusion skipped: vision unavailable"
    assert missing_reason((), "nlp") == "the nlp stage produced no result"


def test_result_without_session_is_rejected() -> None:
    with pytest.raises(ValueError, match="session_id"):
        build_content({"overall_status": "COMPLETE"})


def test_failed_result_from_the_service_reads_cleanly() -> None:
    """The service's own FAILED result (worker died before the pipeline ran) is valid input."""
    from backend.analysis.service import failed_result
    from backend.db.models.analysis import Analysis

    analysis = Analysis(
        id="a1", patient_ref=None, image_sha256="ab" * 32, error="worker died 3 times"
    )
    analysis.created_at = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    analysis.completed_at = None
    content = build_content(failed_result(analysis))
    assert content.status == "FAILED"
    assert content.task_id is None and content.provenance.code_version is None
    assert set(content.missing.values()) == {"the analysis failed: worker died 3 times"}
    assert content.reported_at == datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def test_image_description_comes_from_the_result(complete: Sample) -> None:
    assert build_content(complete[0]).provenance.image_desc == "PNG 256\u00d7256 px"
