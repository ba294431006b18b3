"""The committed `openapi.json` is what the app serves, and it is fit for generated clients."""

from __future__ import annotations

import json
from pathlib import Path

from backend.api.app import create_app
from backend.api.openapi import render
from backend.config import Settings
from tests.conftest import REPO

COMMITTED = REPO / "openapi.json"
# Errors whose body a standard fixes: STOW-RS answers 409 with the Store Instances Response
# (PS3.18 10.5.3), saying per instance why nothing was stored.
STANDARD_ERRORS = {
    ("post", "/api/v1/dicomweb/studies", "409"): (
        "application/dicom+json",
        "#/components/schemas/StowResponse",
    ),
}


def test_committed_spec_matches_the_app(tmp_path: Path, settings: Settings) -> None:
    served = render(create_app(settings).openapi())
    committed = COMMITTED.read_text(encoding="utf-8")
    assert served == committed, (
        "openapi.json is out of date: run `medsight openapi --out openapi.json` and commit it"
    )


def test_every_error_is_problem_json_and_operation_ids_are_readable() -> None:
    spec = json.loads(COMMITTED.read_text(encoding="utf-8"))
    seen: set[str] = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            op_id = operation["operationId"]
            assert op_id not in seen and "api_v1" not in op_id and "__" not in op_id, op_id
            seen.add(op_id)
            for code, response in operation["responses"].items():
                if int(code) < 400:
                    continue
                content = response.get("content", {})
                media_type, schema = STANDARD_ERRORS.get(
                    (method, path, code),
                    ("application/problem+json", "#/components/schemas/ProblemDetail"),
                )
                assert list(content) == [media_type], (method, path, code)
                assert content[media_type]["schema"]["$ref"] == schema
            if "requestBody" in operation:
                assert {"400", "422"} <= set(operation["responses"]), (method, path)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    # The result carries its version and the seed's names.
    result = schemas["AnalysisResult"]["properties"]
    assert "schema_version" in result
    assert schemas["RiskLevel"]["enum"] == ["LOW", "MEDIUM", "HIGH"]
    assert "disease" in schemas["DifferentialItem"]["properties"]


def test_etags_location_and_chat_events_are_documented() -> None:
    spec = json.loads(COMMITTED.read_text(encoding="utf-8"))
    paths = spec["paths"]
    result = paths["/api/v1/analyze/result/{session_id}"]["get"]["responses"]
    assert "ETag" in result["200"]["headers"] and "304" in result
    heatmap = paths["/api/v1/analyze/result/{session_id}/heatmap"]["get"]["responses"]
    assert "image/jpeg" in heatmap["200"]["content"] and "304" in heatmap
    submit = paths["/api/v1/analyze"]["post"]["responses"]
    assert "Location" in submit["202"]["headers"]
    stream = paths["/api/v1/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    variants = stream["schema"]["oneOf"]
    events = {v["properties"]["event"]["const"]: v["properties"]["data"] for v in variants}
    assert set(events) == {"meta", "sources", "token", "done", "error"}
    for data in events.values():
        name = data["contentSchema"]["$ref"].removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"]
