"""A real server, real models: fixtures end COMPLETE fast with consistent fields; bad input
never hurts the server."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import fixture_images, shared_data
from tests.e2e.server import Server

pytestmark = pytest.mark.slow
SYMPTOMS = "Dry cough and fever for three days, short of breath on exertion. No chest pain."


def submit(client: httpx.Client, image: Path, symptoms: str | None = SYMPTOMS) -> dict:
    data = {"symptoms": symptoms} if symptoms else {}
    response = client.post(
        "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}, data=data
    )
    assert response.status_code == 202, response.text
    return response.json()


def wait_result(client: httpx.Client, accepted: dict, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/analyze/status/{accepted['task_id']}").json()
        if status["status"] not in {"queued", "running"}:
            response = client.get(f"/api/v1/analyze/result/{accepted['session_id']}")
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(0.05)
    raise AssertionError(f"not finished in {timeout}s: {accepted}")


def test_each_fixture_completes_within_5s_with_consistent_fields(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for image in fixture_images():
            started = time.monotonic()
            accepted = submit(client, image)
            assert accepted["status"] == "queued" and accepted["queue_position"] >= 0
            result = wait_result(client, accepted, timeout=5.0)
            assert time.monotonic() - started < 5.0
            assert result["overall_status"] == "COMPLETE", result["warnings"]
            vision = result["vision"]
            assert 0 <= vision["anomaly_score"] <= 100
            if vision["anomaly_score"] < vision["threshold"]:
                assert vision["risk_level"] != "HIGH"
            else:
                assert vision["risk_level"] != "LOW"
            for key in ("recon", "kl", "vit"):
                assert key in vision["components"] and "z" in vision["components"][key]
            head, _, payload = vision["heatmap_base64"].partition(",")
            assert head == "data:image/jpeg;base64"  # a data URI, usable as <img src>
            jpeg = base64.b64decode(payload)
            assert jpeg.startswith(b"\xff\xd8\xff") and vision["heatmap_media_type"] == "image/jpeg"
            assert result["schema_version"] == 2
            assert len(jpeg) < 150_000  # the result body stays small
            for box in vision["top_regions"]:
                assert 0 <= box["x"] < 256 and 0 <= box["y"] < 256 and box["width"] > 0
            nlp = result["nlp"]
            assert set(nlp["entities"]) == {"diseases", "symptoms", "medications", "anatomy"}
            assert nlp["primary_diagnosis"] and 0 < nlp["diagnosis_confidence"] <= 1
            assert 1 <= len(nlp["differential"]) <= 5
            assert result["fusion"]["alignment"] in {"strong", "moderate", "weak", "conflict"}
            timings = result["timings"]
            stages = sum(
                timings[k]
                for k in ("preprocess_ms", "vision_ms", "nlp_ms", "fusion_ms", "report_ms")
            )
            assert 0 < stages <= timings["total_ms"] + 1.0
            assert (
                result["provenance"]["image_sha256"]
                and result["provenance"]["models"]["vision"]["sha256"]
            )
            assert (
                "not a diagnosis" in result["report_text"]
                or "decision-support" in result["report_text"]
            )


def test_idempotency_key_returns_the_first_task(server: Server) -> None:
    image = fixture_images()[0]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = {"Idempotency-Key": f"retry-{time.time()}"}
        first = client.post(
            "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}, headers=headers
        )
        again = client.post(
            "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}, headers=headers
        )
        assert first.status_code == again.status_code == 202
        assert first.json()["task_id"] == again.json()["task_id"]
        assert again.headers.get("idempotent-replay") == "true"


def test_status_long_poll_answers_when_the_analysis_finishes(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        accepted = submit(client, fixture_images()[2])
        started = time.monotonic()
        status = client.get(f"/api/v1/analyze/status/{accepted['task_id']}", params={"wait": 20})
        waited = time.monotonic() - started
        assert status.status_code == 200
        # One request held until the end (not a 20 s timeout): the job takes well under 5 s.
        assert status.json()["status"] == "complete", status.json()
        assert waited < 10
        # Finished: a long poll answers at once; out-of-range waits are a 422 problem.
        again = client.get(f"/api/v1/analyze/status/{accepted['task_id']}", params={"wait": 20})
        assert again.json()["status"] == "complete"
        bad = client.get(f"/api/v1/analyze/status/{accepted['task_id']}", params={"wait": 31})
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")

        # The finished result: the same body and ETag on every read; a revalidation is a 304.
        url = f"/api/v1/analyze/result/{accepted['session_id']}"
        first, second = client.get(url), client.get(url)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content and first.json()["vision"]["heatmap_base64"]
        etag = first.headers["etag"]
        assert etag == second.headers["etag"] and etag.startswith('"')
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""


def test_without_symptoms_vision_only_is_complete(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        result = wait_result(client, submit(client, fixture_images()[1], symptoms=None))
    assert result["overall_status"] == "COMPLETE" and result["nlp"] is None
    assert result["vision"] is not None


def test_hostile_uploads_get_4xx_or_a_warning_and_the_server_survives(server: Server) -> None:
    bad = Path(__file__).resolve().parents[1] / "data" / "bad_inputs" / "files"
    if not (bad / "expected.json").exists():
        import subprocess
        import sys

        shared_data("cxr-dev")
        subprocess.run([sys.executable, str(bad.parent / "generate.py")], check=True)
    expected = json.loads((bad / "expected.json").read_text())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for name, outcome in expected.items():
            response = client.post(
                "/api/v1/analyze", files={"image": (name, (bad / name).read_bytes())}
            )
            if outcome == "reject":
                assert 400 <= response.status_code < 500, (
                    name,
                    response.status_code,
                    response.text[:300],
                )
                assert response.headers["content-type"].startswith("application/problem+json"), name
            else:
                assert response.status_code == 202, (name, response.text)
                result = wait_result(client, response.json())
                assert result["warnings"], name
        long_text = (bad / "symptoms_100kb.txt").read_text()
        response = client.post(
            "/api/v1/analyze",
            files={"image": ("x.png", fixture_images()[0].read_bytes())},
            data={"symptoms": long_text},
        )
        assert response.status_code in {413, 422}, response.text[:200]
        assert client.get("/api/v1/health").status_code == 200
    assert server.rss_mb() < 2048


def test_reports_pdf_with_etag_and_fhir_bundle(server: Server) -> None:
    from fhir.resources.R4B.bundle import Bundle

    with httpx.Client(base_url=server.url, timeout=60) as client:
        result = wait_result(client, submit(client, fixture_images()[3]))
        sid = result["session_id"]
        pdf = client.get(f"/api/v1/report/{sid}")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF") and pdf.headers["etag"]
        again = client.get(f"/api/v1/report/{sid}", headers={"If-None-Match": pdf.headers["etag"]})
        assert again.status_code == 304
        fhir = client.get(f"/api/v1/report/{sid}/fhir")
        assert fhir.status_code == 200
        bundle = Bundle.model_validate(fhir.json())
        kinds = {entry.resource.get_resource_type() for entry in bundle.entry or []}
        assert {"DiagnosticReport", "Observation", "Provenance"} <= kinds
        for path in ("/api/v1/report/unknown-session", "/api/v1/report/unknown-session/fhir"):
            missing = client.get(path)
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("application/problem+json")
