"""The result contract over HTTP: schema 2 with the seed's names, the heatmap in three forms and
as its own resource, and rows stored under schema 1 still served as schema 2."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
from fastapi import FastAPI
from PIL import Image

from backend.db.base import new_id, utcnow
from backend.db.models import Analysis, Job
from backend.db.session import transaction
from tests.conftest import parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import finished_analysis


def _jpeg_base64() -> str:
    """A real small JPEG, base64 without a data: prefix, as schema-1 rows stored it."""
    buf = io.BytesIO()
    Image.fromarray(np.arange(64 * 96, dtype=np.uint8).reshape(64, 96)).save(buf, "JPEG")
    return base64.b64encode(buf.getvalue()).decode()


TINY_JPEG = _jpeg_base64()


async def test_result_is_schema_2_and_its_heatmap_comes_in_three_forms(
    client: httpx.AsyncClient,
) -> None:
    session_id = await finished_analysis(client, {})
    path = f"/api/v1/analyze/result/{session_id}"
    inline = await client.get(path)
    assert inline.status_code == 200
    body = inline.json()
    assert body["schema_version"] == 2
    vision = body["vision"]
    assert vision["risk_level"] in {"LOW", "MEDIUM", "HIGH"}
    assert vision["heatmap_base64"].startswith("data:image/jpeg;base64,")
    assert vision["heatmap_url"] is None
    panels = base64.b64decode(vision["heatmap_base64"].partition(",")[2])

    linked = await client.get(path, params={"heatmap": "url"})
    assert linked.status_code == 200 and linked.headers["etag"] != inline.headers["etag"]
    lv = linked.json()["vision"]
    assert lv["heatmap_base64"] is None and lv["heatmap_url"] == f"{path}/heatmap"
    assert len(linked.content) * 3 < len(inline.content)  # the image left the hot body
    assert {k: v for k, v in linked.json().items() if k != "vision"} == {
        k: v for k, v in body.items() if k != "vision"
    }

    image = await client.get(lv["heatmap_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == panels
    assert "immutable" in image.headers["cache-control"]
    again = await client.get(lv["heatmap_url"], headers={"If-None-Match": image.headers["etag"]})
    assert again.status_code == 304 and not again.content

    none = (await client.get(path, params={"heatmap": "none"})).json()["vision"]
    assert none["heatmap_base64"] is None and none["heatmap_url"] is None
    assert_problem(await client.get(path, params={"heatmap": "svg"}), 422)


async def test_a_schema_1_row_is_served_as_schema_2(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    analysis_id, job_id = new_id(), new_id()
    stored_v1 = {
        "session_id": analysis_id,
        "task_id": job_id,
        "overall_status": "COMPLETE",
        "created_at": "2026-11-30T10:00:00+00:00",
        "vision": {
            "anomaly_score": 47.5,
            "risk_level": "MODERATE",
            "threshold": 57.7,
            "components": {"patch": {"value": 0.31, "z": 1.2}},
            "heatmap_base64": TINY_JPEG,
            "heatmap_media_type": "image/jpeg",
            "top_regions": [],
            "model_confidence": 0.2,
        },
        "nlp": {
            "entities": {"diseases": [], "symptoms": [], "medications": [], "anatomy": []},
            "primary_diagnosis": "Pneumonia",
            "diagnosis_confidence": 0.4,
            "differential": [{"condition": "Pneumonia", "confidence": 0.4, "id": "pneumonia"}],
        },
        "fusion": {
            "image_text_similarity": 0.7,
            "alignment": "moderate",
            "final_risk": "MODERATE",
            "final_score": 44.0,
            "disagreement": False,
            "explanation": "moderate agreement",
        },
        "report_text": "stored before schema 2",
        "timings": {"total_ms": 90.0},
        "warnings": [],
        "provenance": {"image_sha256": "0" * 64, "models": {}, "code_version": "0.1.0"},
    }
    now = utcnow()
    # The row belongs to this client's anonymous identity (each anonymous client is its own).
    identity = (await client.post("/api/v1/auth/anonymous")).json()["anonymous_id"]
    async with transaction(parts(app).sessionmaker) as session:
        session.add(
            Analysis(
                id=analysis_id,
                owner_key="anon:" + identity.split(".")[1],
                image_key="uploads/none.png",
                image_sha256="0" * 64,
                image_format="png",
                image_width=256,
                image_height=256,
                status="complete",
                overall_status="COMPLETE",
                result=stored_v1,
                risk_level="MODERATE",
                anomaly_score=47.5,
                created_at=now,
                completed_at=now,
            )
        )
        session.add(
            Job(id=job_id, analysis_id=analysis_id, status="done", available_at=now, created_at=now)
        )
    body = (await client.get(f"/api/v1/analyze/result/{analysis_id}")).json()
    assert body["schema_version"] == 2
    assert body["vision"]["risk_level"] == "MEDIUM" and body["fusion"]["final_risk"] == "MEDIUM"
    assert body["nlp"]["differential"][0]["disease"] == "Pneumonia"
    assert body["vision"]["heatmap_base64"] == f"data:image/jpeg;base64,{TINY_JPEG}"
    pdf = await client.get(f"/api/v1/report/{analysis_id}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    fhir = await client.get(f"/api/v1/report/{analysis_id}/fhir")
    assert fhir.status_code == 200 and "Medium risk" in fhir.text
    heatmap = await client.get(f"/api/v1/analyze/result/{analysis_id}/heatmap")
    assert heatmap.status_code == 200 and heatmap.content == base64.b64decode(TINY_JPEG)
