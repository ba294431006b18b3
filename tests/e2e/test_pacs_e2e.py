"""The hospital loop, end to end, with a real MedSight server and a real PACS (Orthanc):

- the PACS sends a CR study to MedSight by STOW-RS (Orthanc's own DICOMweb client, with a
  scoped API key), and within 90 s its study holds MedSight's SR and heatmap series;
- a modality that only speaks DIMSE sends C-STORE to Orthanc, which forwards chest radiographs
  by STOW-RS (docs/pacs/orthanc-forward.lua): the same results come back.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest

from backend.contract import AnalysisResult
from backend.dicomweb.outbox import derived_uid
from tests.conftest import PG_URL, REPO
from tests.dicomweb.helpers import cr_image
from tests.dicomweb.orthanc import Orthanc, free_port, need_orthanc, series_by_modality
from tests.dicomweb.test_writers import check_sr
from tests.e2e.server import Server, running_server

pytestmark = pytest.mark.slow

DONE_WITHIN_S = 90.0
FORWARD_LUA = REPO / "docs" / "pacs" / "orthanc-forward.lua"


@dataclass
class Loop:
    server: Server
    orthanc: Orthanc
    key: str


def api_key(base: str, *scopes: str) -> str:
    with httpx.Client(base_url=base, timeout=60) as client:
        login = {"email": "pacs@example.org", "password": "orthanc sends studies here"}
        assert client.post("/api/v1/auth/register", json=login).status_code == 202
        token = client.post("/api/v1/auth/login", json=login).json()["access_token"]
        r = client.post(
            "/api/v1/users/me/api-keys",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "orthanc", "scopes": list(scopes)},
        )
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    need_orthanc()
    root = tmp_path_factory.mktemp("pacs-loop")
    orthanc = Orthanc(root / "pacs", dicom_port=free_port(), lua_scripts=[FORWARD_LUA])
    env = {
        "PACS_DICOMWEB_URL": orthanc.dicomweb,
        "PACS_SWEEP_INTERVAL_S": "2",
        "AUTH_REQUIRED": "true",
        **({"DATABASE_URL": PG_URL} if PG_URL else {}),
    }
    (root / "medsight").mkdir()
    with running_server(root / "medsight", **env) as server:
        key = api_key(server.url, "analyze:write", "analyze:read")
        orthanc.servers = {
            "medsight": {
                "Url": f"{server.url}/api/v1/dicomweb/",
                "HttpHeaders": {"X-API-Key": key},
            }
        }
        orthanc.start()
        try:
            yield Loop(server, orthanc, key)
        finally:
            orthanc.stop()


def wait_for_results(loop: Loop, study_uid: str, started: float) -> dict:
    series: dict = {}
    while time.monotonic() - started < DONE_WITHIN_S:
        series = series_by_modality(loop.orthanc, study_uid)
        if {"SR", "OT"} <= set(series):
            return series
        time.sleep(1)
    raise AssertionError(
        f"no results after {DONE_WITHIN_S:.0f} s: {list(series)}\n"
        f"{loop.orthanc.log_tail()}\n{loop.server.log_tail()}"
    )


def check_results(loop: Loop, image: bytes, series: dict) -> None:
    """The SR in Orthanc says what MedSight's result for this image says."""
    sop_uid = str(pydicom.dcmread(io.BytesIO(image)).SOPInstanceUID)
    with httpx.Client(base_url=loop.server.url, headers={"X-API-Key": loop.key}) as client:
        items = client.get("/api/v1/users/me/sessions", params={"limit": 100}).json()["items"]
        results = [
            AnalysisResult.model_validate_json(
                client.get(f"/api/v1/analyze/result/{item['session_id']}").content
            )
            for item in items
        ]
    [sr_id] = series["SR"]["Instances"]
    sr = pydicom.dcmread(io.BytesIO(loop.orthanc.instance_file(sr_id)))
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sop_uid
    # The analysis whose outbox row named this SR (Orthanc may re-encode what it forwards).
    [result] = [r for r in results if derived_uid(r.session_id, "sr-instance") == sr.SOPInstanceUID]
    check_sr(sr, image, result)


def test_orthanc_sends_a_cr_study_by_stow_rs_and_gets_sr_and_heatmap_back(loop: Loop) -> None:
    image = cr_image()
    study_uid = str(pydicom.dcmread(io.BytesIO(image)).StudyInstanceUID)
    study = loop.orthanc.store(image)["ParentStudy"]
    started = time.monotonic()
    r = httpx.post(
        f"{loop.orthanc.dicomweb}/servers/medsight/stow",
        json={"Resources": [study], "Synchronous": True},
        timeout=120,
    )
    assert r.status_code == 200, (r.text, loop.orthanc.log_tail(), loop.server.log_tail())
    series = wait_for_results(loop, study_uid, started)
    print(f"STOW-RS from Orthanc to SR + heatmap in Orthanc: {time.monotonic() - started:.1f} s")
    assert {"CR", "SR", "OT"} == set(series)
    check_results(loop, image, series)


def test_a_modality_sending_by_dimse_reaches_medsight_through_orthanc(
    loop: Loop, tmp_path: Path
) -> None:
    image = cr_image()
    study_uid = str(pydicom.dcmread(io.BytesIO(image)).StudyInstanceUID)
    path = tmp_path / "cr.dcm"
    path.write_bytes(image)
    started = time.monotonic()
    loop.orthanc.c_store(path)
    series = wait_for_results(loop, study_uid, started)
    print(f"C-STORE to Orthanc to SR + heatmap in Orthanc: {time.monotonic() - started:.1f} s")
    assert {"CR", "SR", "OT"} == set(series)
    check_results(loop, image, series)
    # MedSight's own series are not sent back to it (they are SR and OT, not CR/DX).
    time.sleep(3)
    assert len(series_by_modality(loop.orthanc, study_uid)) == 3
