"""A realistic analysis result built around a real chest X-ray, for report tests and the bench."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from backend.contract import DISCLAIMER, AnalysisResult, OverallStatus, load_result
from backend.contract.heatmap import to_data_uri

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("MEDSIGHT_SHARED_DATA", REPO.parent / "shared" / "data"))
XRAY = SHARED_DATA / "cxr-dev" / "fixtures" / "dev-0009.png"  # COVID, test split

# Symptom2Disease row 100 (label Pneumonia), then a clinician's note with two negations.
SYMPTOMS = (
    "I've been feeling really cold and tired lately, and I've been coughing a lot with chest "
    "pain. My heart is beating really fast too, and when I cough, the phlegm is kind of a rusty "
    "color. Denies fever; no history of tuberculosis."
)

VISION_SHA = "3f1c2a9e8b7d6c5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877"
NLP_SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00"


def _span(needle: str) -> tuple[int, int]:
    start = SYMPTOMS.index(needle)
    return start, start + len(needle)


def _entity(needle: str, *, negated: bool = False, uncertain: bool = False) -> dict[str, Any]:
    start, end = _span(needle)
    return {"text": needle, "start": start, "end": end, "negated": negated, "uncertain": uncertain}


def three_panels(xray: Path = XRAY, side: int | None = None) -> tuple[bytes, bytes]:
    """The X-ray's PNG bytes and a three-panel PNG: CLAHE original | heatmap | overlay.

    ``side`` resizes the X-ray first (the pipeline draws its panels at up to 512 px a side).
    """
    raw = xray.read_bytes()
    gray = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE)
    if side is not None:
        gray = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    h, w = clahe.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # A smooth blob in the right lower zone, where the COVID opacity of this film sits.
    blob = np.exp(-(((xx - 0.68 * w) / (0.16 * w)) ** 2 + ((yy - 0.62 * h) / (0.2 * h)) ** 2))
    blob += 0.45 * np.exp(
        -(((xx - 0.3 * w) / (0.12 * w)) ** 2 + ((yy - 0.4 * h) / (0.15 * h)) ** 2)
    )
    heat = cv2.applyColorMap((255 * blob / blob.max()).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(clahe, cv2.COLOR_GRAY2BGR)
    overlay = cv2.addWeighted(base, 0.6, heat, 0.4, 0.0)
    ok, png = cv2.imencode(".png", np.hstack([base, heat, overlay]))
    assert ok
    return raw, png.tobytes()


def as_jpeg(image: bytes, quality: int = 90) -> bytes:
    """The image re-encoded as JPEG, as the pipeline stores its heatmap panels."""
    pixels = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return jpeg.tobytes()


def make_result(heatmap: bytes, image_sha256: str) -> dict[str, Any]:
    """A COMPLETE analysis result as the pipeline stores it (schema 2 JSON).

    ``heatmap`` is the panels image (JPEG as the pipeline writes it, or PNG); read the dict with
    ``backend.contract.load_result``.
    """
    return {
        "schema_version": 2,
        "session_id": "5b0f3c1e-2d4a-4c8e-9f61-7a2b3c4d5e6f",
        "task_id": "9e8d7c6b-5a49-4837-a625-1b0c9d8e7f60",
        "patient_ref": "MRN-0042317",
        "created_at": "2026-11-28T03:14:07.512000+00:00",
        "completed_at": "2026-11-28T03:14:08.044000+00:00",
        "overall_status": "COMPLETE",
        "stages": {s: "ok" for s in ("input", "vision", "memory", "nlp", "fusion", "report")},
        "image": {"format": "PNG", "width": 256, "height": 256},
        "vision": {
            "anomaly_score": 78.4,
            "risk_level": "HIGH",
            "threshold": 55.0,
            "components": {
                "recon": {"value": 0.0213, "z": 2.41},
                "kl": {"value": 31.7, "z": 1.12},
                "vit": {"value": 0.384, "z": 2.87},
                "patch": {"value": 0.91, "z": 3.05},
                "knn": {"value": 12.6, "z": 2.2},
            },
            "heatmap_base64": to_data_uri(heatmap),
            "top_regions": [
                {"x": 148, "y": 120, "width": 72, "height": 88, "confidence": 0.83},
                {"x": 52, "y": 78, "width": 56, "height": 60, "confidence": 0.47},
            ],
            "model_confidence": 0.81,
            "ood_score": 0.12,
        },
        "nlp": {
            "entities": {
                "diseases": [_entity("tuberculosis", negated=True)],
                "symptoms": [
                    _entity("tired"),
                    _entity("coughing"),
                    _entity("chest pain"),
                    _entity("phlegm"),
                    _entity("fever", negated=True),
                ],
                "medications": [],
                "anatomy": [_entity("heart")],
            },
            "primary_diagnosis": "Pneumonia",
            "diagnosis_confidence": 0.62,
            "differential": [
                {"disease": "Pneumonia", "confidence": 0.62},
                {"disease": "Bronchitis", "confidence": 0.21},
                {"disease": "COVID-19", "confidence": 0.11},
            ],
        },
        "fusion": {
            "image_text_similarity": 0.58,
            "alignment": "moderate",
            "final_risk": "HIGH",
            "disagreement": False,
        },
        "report_text": (
            "The frontal chest radiograph shows an anomaly score of 78.4, above the 55.0 "
            "threshold, with the strongest signal in the right lower zone. The reported cough, "
            "chest pain and rusty sputum are consistent with a lower respiratory tract infection; "
            "fever and a history of tuberculosis are denied.\n\n"
            "Image and text findings point the same way (moderate alignment)."
        ),
        "timings": {
            "preprocess_ms": 3.1,
            "vision_ms": 412.0,
            "nlp_ms": 38.5,
            "fusion_ms": 0.4,
            "report_ms": 0.6,
            "total_ms": 454.6,
        },
        "warnings": [],
        "provenance": {
            "image_sha256": image_sha256,
            "models": {
                "vision": {
                    "name": "medsight-vae-vit-fused",
                    "version": "1.0.0",
                    "sha256": VISION_SHA,
                },
                "nlp": {"name": "medspacy-rules+minilm", "version": "1.3.1", "sha256": NLP_SHA},
            },
            "threshold": 55.0,
            "code_version": "0.1.0+3e5a1f2",
        },
        "disclaimer": DISCLAIMER,
    }


def sample() -> tuple[dict[str, Any], bytes]:
    """A COMPLETE stored result (JPEG panels) and the original X-ray PNG it was computed from."""
    raw, panels = three_panels()
    return make_result(as_jpeg(panels), hashlib.sha256(raw).hexdigest()), raw


def vary(result: AnalysisResult, **changes: Any) -> AnalysisResult:
    """A validated copy with fields replaced; a dict given for a part updates that part's fields."""
    data = result.model_dump(mode="json")
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return load_result(data)


def partial(result: AnalysisResult, *missing: str) -> AnalysisResult:
    """A PARTIAL copy of a result with the named parts dropped, as the pipeline records it."""
    warnings = [f"{p} stage failed: RuntimeError: worker ran out of memory" for p in missing]
    return vary(
        result,
        overall_status=OverallStatus.PARTIAL.value,
        warnings=[*result.warnings, *warnings],
        **dict.fromkeys(missing),
    )
