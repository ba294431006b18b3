"""Building STOW-RS requests for the tests (independently of the service's own encoder)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from pydicom.uid import ComputedRadiographyImageStorage, generate_uid

from tests.conftest import shared_data
from tests.data.dicom.fixtures import xray_dicom

BOUNDARY = "MedSightTest-7f3a9c"
STOW = "/api/v1/dicomweb/studies"
DICOM_JSON = "application/dicom+json"
# Attributes the results must carry over from the source (and no log line may contain).
PATIENT = {"PatientName": "Roe^Richard", "PatientID": "PID-55120-X", "AccessionNumber": "ACC-4242"}


def xray_png(name: str = "dev-0021.png") -> Path:
    return shared_data("cxr-dev", "fixtures", name)


def cr_image(png: Path | None = None, **attrs: object) -> bytes:
    """A CR chest X-ray of a real radiograph, in a study and series of its own."""
    values: dict[str, object] = {
        "SOPClassUID": ComputedRadiographyImageStorage,
        "Modality": "CR",
        "SOPInstanceUID": generate_uid(),
        "StudyInstanceUID": generate_uid(),
        "SeriesInstanceUID": generate_uid(),
        **PATIENT,
    }
    values.update(attrs)
    return xray_dicom(png or xray_png(), **values)


def related(*parts: bytes | tuple[str | None, bytes], root_type: str = "application/dicom"):
    """(body, headers) of a multipart/related request; a part may name its own content type."""
    chunks = []
    for part in parts:
        content_type, data = part if isinstance(part, tuple) else ("application/dicom", part)
        head = f"--{BOUNDARY}\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    body = b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()
    headers = {
        "Content-Type": f'multipart/related; type="{root_type}"; boundary={BOUNDARY}',
        "Accept": DICOM_JSON,
    }
    return body, headers


def values(element: dict[str, Any] | None) -> list[Any]:
    return list((element or {}).get("Value", []))


def sequence(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return values(body.get(tag))


def first(item: dict[str, Any], tag: str) -> Any:
    found = values(item.get(tag))
    return found[0] if found else None


def private(item: dict[str, Any], element: int) -> Any:
    """A value of MedSight's private block (creator MEDSIGHT in group 0099)."""
    assert first(item, "00990010") == "MEDSIGHT"
    return first(item, f"009910{element:02X}")


async def wait_status(
    client: httpx.AsyncClient,
    task_id: str,
    done: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 180.0,
) -> dict[str, Any]:
    """Poll the status (long polls) until `done(status)` or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(
            f"/api/v1/analyze/status/{task_id}", params={"wait": 5}, headers=headers or {}
        )
        assert r.status_code == 200, r.text
        status: dict[str, Any] = r.json()
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout}s: {json.dumps(status)}")
        if finished(status):
            await asyncio.sleep(0.5)  # the long poll returns at once once finished


def finished(status: dict[str, Any]) -> bool:
    return status["status"] in {"complete", "partial", "failed", "cancelled"}


def delivery_state(*states: str):
    def check(status: dict[str, Any]) -> bool:
        delivery = status.get("pacs_delivery") or {}
        return delivery.get("state") in states

    return check
