"""The FHIR R4 export: validated with fhir.resources' R4B models and round-tripped."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from backend.contract import OverallStatus, load_result
from backend.contract.heatmap import to_data_uri
from backend.reports.content import build_content
from backend.reports.fhir import build_fhir_bundle
from backend.reports.pdf import render_pdf
from tests.unit.reports.conftest import Sample
from tests.unit.reports.sample import NLP_SHA, VISION_SHA, partial, vary


def _roundtrip(bundle: dict[str, Any]) -> None:
    """Validate as R4 and check that parse then serialise gives back the same JSON."""
    as_json = json.dumps(bundle)
    parsed = Bundle.model_validate_json(as_json)
    assert json.loads(parsed.model_dump_json()) == json.loads(as_json)


def _by_type(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def _observation(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    found = [o for o in _by_type(bundle, "Observation") if o["code"]["coding"][0]["code"] == code]
    assert len(found) == 1
    return found[0]


def _assert_references_resolve(bundle: dict[str, Any]) -> None:
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                refs.append(node["reference"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([e["resource"] for e in bundle["entry"]])
    assert refs
    for ref in refs:
        assert ref in full_urls or any(url.endswith("/" + ref) for url in full_urls), ref


def test_complete_bundle_validates_and_round_trips(complete: Sample) -> None:
    bundle = build_fhir_bundle(complete.result)
    _roundtrip(bundle)
    assert bundle["type"] == "collection"
    _assert_references_resolve(bundle)
    (report,) = _by_type(bundle, "DiagnosticReport")
    assert report["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "18748-4",
        "display": "Diagnostic imaging study",
    }
    assert report["status"] == "preliminary"
    assert report["subject"]["identifier"]["value"] == "MRN-0042317"
    assert len(report["result"]) == 6
    assert "not a diagnosis" in report["conclusion"]


def test_score_risk_and_conclusion_observations(complete: Sample) -> None:
    bundle = build_fhir_bundle(complete.result)
    score = _observation(bundle, "anomaly-score")
    assert score["valueQuantity"]["value"] == 78.4
    assert score["valueQuantity"]["code"] == "{score}"
    assert score["referenceRange"][0]["high"]["value"] == 55.0
    assert score["interpretation"][0]["coding"][0]["code"] == "H"
    z = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in score["component"]}
    assert z["component-patch-z"] == 3.05 and z["component-recon-value"] == 0.0213
    assert z["ood-score"] == 0.12 and z["model-confidence"] == 0.81
    risk = _observation(bundle, "risk-level")
    assert risk["valueCodeableConcept"]["coding"][0]["code"] == "HIGH"
    conclusion = _observation(bundle, "19005-8")
    assert conclusion["valueString"] == build_content(complete.result).conclusion
    text = _observation(bundle, "clinical-text-findings")
    assert {"text": "diseases: tuberculosis (negated)"} in text["note"]


def test_low_score_is_interpreted_normal(complete: Sample) -> None:
    result = vary(
        complete.result,
        vision={"anomaly_score": 31.0, "risk_level": "LOW"},
        fusion={"final_risk": "LOW"},
    )
    bundle = build_fhir_bundle(result)
    score = _observation(bundle, "anomaly-score")
    assert score["interpretation"][0]["coding"][0]["code"] == "N"
    risk = _observation(bundle, "risk-level")["valueCodeableConcept"]
    assert risk["coding"][0] == {
        "system": "urn:medsight:fhir:risk-level",
        "code": "LOW",
        "display": "Low risk",
    }


def test_medium_risk_is_coded_and_displayed(complete: Sample) -> None:
    result = vary(complete.result, fusion={"final_risk": "MEDIUM"})
    bundle = build_fhir_bundle(result)
    _roundtrip(bundle)
    risk = _observation(bundle, "risk-level")
    assert risk["valueCodeableConcept"]["coding"][0]["code"] == "MEDIUM"
    assert risk["valueCodeableConcept"]["text"] == "Medium risk"
    assert risk["component"][0]["valueCodeableConcept"]["coding"][0]["code"] == "HIGH"


def test_heatmap_is_attached_as_media(complete: Sample) -> None:
    result = complete.result
    bundle = build_fhir_bundle(result)
    (media,) = _by_type(bundle, "Media")
    attachment = media["content"]
    data = base64.b64decode(attachment["data"])
    assert result.vision is not None and result.vision.heatmap_base64 is not None
    assert result.vision.heatmap_base64.startswith("data:image/jpeg;base64,")
    assert data == base64.b64decode(result.vision.heatmap_base64.partition(",")[2])
    assert attachment["contentType"] == "image/jpeg" and attachment["size"] == len(data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324
    (report,) = _by_type(bundle, "DiagnosticReport")
    assert report["media"][0]["link"]["reference"] == next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"] is media
    )


def test_provenance_records_image_hash_models_threshold_and_code(complete: Sample) -> None:
    result = complete.result
    bundle = build_fhir_bundle(result)
    (prov,) = _by_type(bundle, "Provenance")
    assert prov["entity"][0]["what"]["identifier"]["value"] == result.provenance.image_sha256
    assert len(prov["target"]) == 8  # report, six observations, the heatmap
    devices = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    agents = [devices[a["who"]["reference"]] for a in prov["agent"]]
    hashes = {d["identifier"][0]["value"] for d in agents if "identifier" in d}
    assert hashes == {VISION_SHA, NLP_SHA}
    versions = {d["deviceName"][0]["name"]: d["version"][0]["value"] for d in agents}
    assert versions == {
        "MedSight": "0.1.0+3e5a1f2",
        "medsight-vae-vit-fused": "1.0.0",
        "medspacy-rules+minilm": "1.3.1",
    }
    software = next(d for d in agents if d["deviceName"][0]["name"] == "MedSight")
    assert software["property"][0]["valueQuantity"][0]["value"] == 55.0


def test_partial_bundle_marks_missing_parts(complete: Sample) -> None:
    bundle = build_fhir_bundle(partial(complete.result, "vision", "fusion"))
    _roundtrip(bundle)
    _assert_references_resolve(bundle)
    (report,) = _by_type(bundle, "DiagnosticReport")
    assert report["status"] == "partial"
    assert "media" not in report and _by_type(bundle, "Media") == []
    for code in ("anomaly-score", "image-text-fusion"):
        obs = _observation(bundle, code)
        assert obs["status"] == "cancelled"
        assert obs["dataAbsentReason"]["coding"][0]["code"] == "error"
        assert "not available: " in obs["note"][0]["text"]
        assert "stage failed" in obs["note"][0]["text"]
    assert _observation(bundle, "clinical-text-findings")["status"] == "preliminary"


def test_failed_bundle_still_validates(complete: Sample) -> None:
    result = partial(complete.result, "vision", "nlp", "fusion")
    result = vary(result, overall_status=OverallStatus.FAILED.value)
    bundle = build_fhir_bundle(result)
    _roundtrip(bundle)
    (report,) = _by_type(bundle, "DiagnosticReport")
    assert report["status"] == "cancelled"
    assert _observation(bundle, "risk-level")["status"] == "cancelled"


def test_base_url_gives_restful_references(complete: Sample) -> None:
    bundle = build_fhir_bundle(complete.result, base_url="https://fhir.hospital.test/r4/")
    _roundtrip(bundle)
    _assert_references_resolve(bundle)
    first = bundle["entry"][0]
    rid = first["resource"]["id"]
    assert first["fullUrl"] == f"https://fhir.hospital.test/r4/DiagnosticReport/{rid}"


def test_pdf_is_the_presented_form(complete: Sample) -> None:
    pdf = render_pdf(complete.result)
    bundle = build_fhir_bundle(complete.result, pdf=pdf)
    _roundtrip(bundle)
    (report,) = _by_type(bundle, "DiagnosticReport")
    form = report["presentedForm"][0]
    assert form["contentType"] == "application/pdf"
    assert base64.b64decode(form["data"]) == pdf


def test_bundle_is_deterministic(complete: Sample) -> None:
    assert build_fhir_bundle(complete.result) == build_fhir_bundle(load_result(complete.stored))


def test_result_without_any_time_is_rejected(complete: Sample) -> None:
    result = vary(complete.result, created_at=None, completed_at=None)
    with pytest.raises(ValueError, match="created_at"):
        build_fhir_bundle(result)


def test_nan_components_are_left_out_not_exported(complete: Sample) -> None:
    assert complete.result.vision is not None
    components = dict(complete.result.vision.components)
    components["published_fused"] = {"value": 61.2, "z": float("nan")}
    bundle = build_fhir_bundle(vary(complete.result, vision={"components": components}))
    _roundtrip(bundle)
    codes = {
        c["code"]["coding"][0]["code"] for c in _observation(bundle, "anomaly-score")["component"]
    }
    assert "component-published_fused-value" in codes
    assert "component-published_fused-z" not in codes


def test_bad_base_url_is_rejected(complete: Sample) -> None:
    with pytest.raises(ValueError, match="base_url"):
        build_fhir_bundle(complete.result, base_url="fhir/")


def test_png_heatmap_is_attached_with_its_media_type(complete: Sample) -> None:
    """The earliest results carry PNG panels (newer ones JPEG): the Media says which."""
    import cv2
    import numpy as np

    png = cv2.imencode(".png", np.full((8, 24, 3), 128, np.uint8))[1].tobytes()
    result = vary(complete.result, vision={"heatmap_base64": to_data_uri(png)})
    bundle = build_fhir_bundle(result)
    _roundtrip(bundle)
    (media,) = _by_type(bundle, "Media")
    assert media["content"]["contentType"] == "image/png"
    assert base64.b64decode(media["content"]["data"]) == png
