"""What every report format says, read from the analysis result."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from backend.contract import DISCLAIMER as PRODUCT_DISCLAIMER
from backend.contract import OverallStatus, RiskLevel, load_result
from backend.contract.heatmap import to_data_uri
from backend.reports.content import DISCLAIMER, IMAGE_MODEL_NOTE, build_content, missing_reason
from backend.reports.fhir import build_fhir_bundle
from backend.reports.pdf import render_pdf
from tests.unit.reports.conftest import Sample
from tests.unit.reports.sample import partial, vary


def test_complete_result_has_no_missing_parts(complete: Sample) -> None:
    content = build_content(complete.result)
    assert content.status is OverallStatus.COMPLETE
    assert content.missing == {}
    assert content.heatmap is not None and content.heatmap.startswith(b"\xff\xd8\xff")
    assert content.heatmap_media_type == "image/jpeg" and content.heatmap_missing is None
    assert content.final_risk is RiskLevel.HIGH
    assert "Anomaly score 78.4/100 (threshold 55.0): HIGH image risk." in content.conclusion
    assert "Negated in the text: tuberculosis, fever." in content.conclusion
    assert "Image-text alignment moderate (similarity 0.58)." in content.conclusion
    assert content.recommendations[0] == "Prioritise review of this study by a radiologist."
    assert [e.text for e in content.entities if e.negated] == ["tuberculosis", "fever"]
    assert [(e.category, e.assertion) for e in content.entities][:2] == [
        ("diseases", "negated"),
        ("symptoms", "present"),
    ]
    assert content.provenance.threshold == 55.0
    assert list(content.provenance.models) == ["nlp", "vision"]
    assert content.timings.total_ms == 454.6
    assert [(c.label, c.value, c.z) for c in content.components][0] == (
        "Reconstruction error (VAE)",
        0.0213,
        2.41,
    )


def test_partial_result_names_missing_parts_with_pipeline_reasons(complete: Sample) -> None:
    content = build_content(partial(complete.result, "vision", "fusion"))
    assert set(content.missing) == {"vision", "fusion"}
    assert content.missing["vision"].startswith("vision stage failed")
    assert content.heatmap is None and content.heatmap_missing == content.missing["vision"]
    assert content.final_risk is None
    assert "Image analysis not available: vision stage failed" in content.conclusion
    assert any("Incomplete analysis" in r for r in content.recommendations)
    assert content.recommendations[0].startswith("No risk level could be computed")


def test_fused_risk_outranks_image_risk(complete: Sample) -> None:
    result = vary(complete.result, fusion={"final_risk": "MEDIUM", "disagreement": True})
    content = build_content(result)
    assert content.final_risk is RiskLevel.MEDIUM
    assert content.recommendations[0].startswith("Review by a radiologist in the routine")
    assert "Overall risk: MEDIUM." in content.conclusion
    assert any("disagree" in r for r in content.recommendations)


def test_without_fusion_the_image_risk_is_final(complete: Sample) -> None:
    result = vary(complete.result, vision={"risk_level": "LOW"}, fusion=None)
    content = build_content(result)
    assert content.final_risk is RiskLevel.LOW
    assert content.recommendations[0].startswith("No anomaly flagged above the threshold")


@pytest.mark.parametrize("encoded", ["not base64 at all!", to_data_uri(b"GIF89a not ours")])
def test_bad_heatmap_is_reported_missing_not_raised(complete: Sample, encoded: str) -> None:
    content = build_content(vary(complete.result, vision={"heatmap_base64": encoded}))
    assert content.heatmap is None
    assert content.heatmap_missing == "the heatmap is not a base64 JPEG or PNG image"


def test_vision_without_heatmap_says_so(complete: Sample) -> None:
    content = build_content(vary(complete.result, vision={"heatmap_base64": None}))
    assert content.heatmap is None
    assert content.heatmap_missing == "the vision stage returned no heatmap"
    assert content.missing == {}


def test_missing_reason_prefers_a_warning_about_the_part() -> None:
    warnings = ("fusion skipped: vision unavailable", "vision stage failed: timeout")
    assert missing_reason(warnings, "vision") == "vision stage failed: timeout"
    assert missing_reason(warnings, "fusion") == "fusion skipped: vision unavailable"
    assert missing_reason((), "nlp") == "the nlp stage produced no result"


def test_result_without_session_is_rejected() -> None:
    with pytest.raises(ValidationError, match="session_id"):
        load_result({"schema_version": 2, "overall_status": "COMPLETE"})
    with pytest.raises(ValueError, match="session_id"):
        build_content(load_result({"session_id": "", "overall_status": "COMPLETE"}))


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
    assert content.status is OverallStatus.FAILED
    assert content.task_id is None and content.provenance.code_version is None
    assert set(content.missing.values()) == {"the analysis failed: worker died 3 times"}
    assert content.reported_at == datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def test_image_description_comes_from_the_result(complete: Sample) -> None:
    assert build_content(complete.result).provenance.image_desc == "PNG 256\u00d7256 px"


def test_report_disclaimer_is_the_product_one_plus_the_image_model_note() -> None:
    assert DISCLAIMER == f"{PRODUCT_DISCLAIMER} {IMAGE_MODEL_NOTE}"


def _as_schema_1(stored: dict[str, Any]) -> dict[str, Any]:
    """The same result as a row written before schema 2."""
    old = copy.deepcopy(stored)
    del old["schema_version"]
    vision, nlp, fusion = old["vision"], old["nlp"], old["fusion"]
    vision["heatmap_base64"] = vision["heatmap_base64"].partition(",")[2]
    for part, key in ((vision, "risk_level"), (fusion, "final_risk")):
        if part[key] == "MEDIUM":
            part[key] = "MODERATE"
    nlp["differential"] = [{"condition": d.pop("disease"), **d} for d in nlp["differential"]]
    return old


def test_schema_1_row_reports_like_its_schema_2_equivalent(complete: Sample) -> None:
    medium = copy.deepcopy(complete.stored)
    medium["vision"]["risk_level"] = medium["fusion"]["final_risk"] = "MEDIUM"
    old = _as_schema_1(medium)
    assert old["fusion"]["final_risk"] == "MODERATE"
    assert "condition" in old["nlp"]["differential"][0]
    assert base64.b64decode(old["vision"]["heatmap_base64"]).startswith(b"\xff\xd8\xff")

    new_result, old_result = load_result(medium), load_result(old)
    content = build_content(old_result)
    assert content == build_content(new_result)
    assert content.final_risk is RiskLevel.MEDIUM and content.heatmap is not None
    assert "MEDIUM image risk" in content.conclusion
    assert render_pdf(old_result) == render_pdf(new_result)
    assert build_fhir_bundle(old_result) == build_fhir_bundle(new_result)
