"""STOW-RS in: each chest X-ray instance becomes an analysis; everything else is refused per
instance with the reason PS3.18 defines; bad requests are problems, and no patient data is
logged."""

from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from pydicom.uid import CTImageStorage, generate_uid
from sqlalchemy import func, select

from backend.db.models import Analysis
from backend.dicomweb.schemas import StowResponse
from tests.conftest import parts
from tests.data.dicom.fixtures import dicom_from_array
from tests.dicomweb.helpers import (
    DICOM_JSON,
    PATIENT,
    STOW,
    cr_image,
    finished,
    first,
    private,
    related,
    sequence,
    wait_status,
)

RELATED_X = 'multipart/related; type="application/dicom"; boundary=x'


def ct_image(**attrs: object) -> bytes:
    """A CT slice: valid DICOM, not a radiograph."""
    arr = (np.arange(128 * 128, dtype=np.uint16).reshape(128, 128) % 4000).astype(np.uint16)
    values = {
        "SOPClassUID": CTImageStorage,
        "SOPInstanceUID": generate_uid(),
        "StudyInstanceUID": generate_uid(),
        "SeriesInstanceUID": generate_uid(),
        "Modality": "CT",
        **PATIENT,
    }
    values.update(attrs)
    return dicom_from_array(arr, **values)


def uid_of(data: bytes, keyword: str = "SOPInstanceUID") -> str:
    import io

    import pydicom

    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).get(keyword))


async def test_a_cr_image_becomes_an_analysis(client: httpx.AsyncClient) -> None:
    image = cr_image()
    body, headers = related(image)
    r = await client.post(STOW, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(DICOM_JSON)
    answer = r.json()
    StowResponse.model_validate(answer)
    assert "00081198" not in answer  # nothing failed
    [item] = sequence(answer, "00081199")
    assert first(item, "00081150") == "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    assert first(item, "00081155") == uid_of(image)
    task_id, session_id = private(item, 2), private(item, 1)
    status = await wait_status(client, task_id, finished)
    assert status["session_id"] == session_id
    assert status["status"] in {"complete", "partial"}, status
    assert status["pacs_delivery"] is None  # no PACS configured: nothing goes back
    result = (await client.get(f"/api/v1/analyze/result/{session_id}")).json()
    assert result["image"]["format"] == "dicom"
    assert 0 <= result["vision"]["anomaly_score"] <= 100


async def test_a_resent_instance_is_answered_with_its_first_analysis(
    client: httpx.AsyncClient, stow_app: FastAPI
) -> None:
    image = cr_image()
    body, headers = related(image)
    first_answer = (await client.post(STOW, content=body, headers=headers)).json()
    again = await client.post(STOW, content=body, headers=headers)
    assert again.status_code == 200, again.text
    [a] = sequence(first_answer, "00081199")
    [b] = sequence(again.json(), "00081199")
    assert private(a, 1) == private(b, 1) and private(a, 2) == private(b, 2)
    async with parts(stow_app).sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Analysis)
            .where(Analysis.idempotency_key == f"dicom:{uid_of(image)}")
        )
    assert count == 1


async def test_each_instance_gets_its_own_answer(client: httpx.AsyncClient) -> None:
    good, ct = cr_image(), ct_image()
    not_dicom = b"\x89PNG\r\n\x1a\n" + bytes(200)
    body, headers = related(good, ct, not_dicom, ("application/dicom+json", b"{}"))
    r = await client.post(STOW, content=body, headers=headers)
    assert r.status_code == 202, r.text  # some stored, some not
    answer = r.json()
    [stored] = sequence(answer, "00081199")
    assert first(stored, "00081155") == uid_of(good)
    failed = sequence(answer, "00081198")
    assert len(failed) == 3
    by_reason = {first(item, "00081197"): item for item in failed}
    assert set(by_reason) == {0x0122, 0xC000}
    ct_item = by_reason[0x0122]  # SOP class not supported, named by its UIDs
    assert first(ct_item, "00081150") == CTImageStorage
    assert first(ct_item, "00081155") == uid_of(ct)
    assert "CT" in private(ct_item, 3)
    unreadable = [item for item in failed if first(item, "00081197") == 0xC000]
    assert len(unreadable) == 2
    assert all(first(item, "00081155") is None for item in unreadable)
    assert any("application/dicom+json" in private(item, 3) for item in unreadable)


async def test_a_request_with_nothing_acceptable_is_a_409(client: httpx.AsyncClient) -> None:
    body, headers = related(ct_image())
    r = await client.post(STOW, content=body, headers=headers)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith(DICOM_JSON)
    [failed] = sequence(r.json(), "00081198")
    assert first(failed, "00081197") == 0x0122


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", b"{}", 415, "unsupported_media_type"),
        ("multipart/form-data; boundary=x", b"--x--\r\n", 415, "unsupported_media_type"),
        (
            'multipart/related; type="application/dicom+json"; boundary=x',
            b"--x--\r\n",
            415,
            "unsupported_stow_type",
        ),
        ('multipart/related; type="application/dicom"', b"", 400, "multipart_boundary_missing"),
        (RELATED_X, b"--x--\r\n", 400, "stow_empty"),
        (
            'multipart/related; type="application/dicom"; boundary=x',
            b"--x\r\nContent-Type: application/dicom\r\n\r\nDICM...",
            400,
            "multipart_truncated",
        ),
        ('multipart/related; type="application/dicom"; boundary=x', b"\x00garbage", 400, None),
    ],
)
async def test_requests_that_are_not_stow_are_refused_as_problems(
    client: httpx.AsyncClient, content_type: str, body: bytes, status: int, code: str | None
) -> None:
    r = await client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if code is not None:
        assert r.json()["code"] == code


async def test_damage_after_a_stored_instance_keeps_the_instance(
    client: httpx.AsyncClient,
) -> None:
    image = cr_image()
    body, headers = related(image)
    truncated = body[: -len(b"--\r\n")] + b"\r\nContent-Type: application/dicom\r\n\r\nDI"
    r = await client.post(STOW, content=truncated, headers=headers)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert first(sequence(answer, "00081199")[0], "00081155") == uid_of(image)
    [damaged] = sequence(answer, "00081198")
    assert first(damaged, "00081197") == 0xC000


async def test_no_patient_data_reaches_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body, headers = related(cr_image(), ct_image(), cr_image(Modality="CT"))
    r = await client.post(STOW, content=body, headers=headers)
    assert r.status_code == 202, r.text
    logged = caplog.text + "".join(str(rec.__dict__) for rec in caplog.records)
    for value in PATIENT.values():
        assert value not in logged
        assert value not in r.text  # nor the answer
