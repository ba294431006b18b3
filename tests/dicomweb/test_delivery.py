"""Results back to a real PACS (Orthanc with its DICOMweb plugin): an X-ray stored to MedSight by
STOW-RS comes back into its study as an SR series and a heatmap series; a PACS that is down gets
them when it returns, also after MedSight restarts."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from fastapi import FastAPI

from backend.config import Settings
from backend.contract import AnalysisResult
from backend.main import create_app
from tests.conftest import make_settings, parts
from tests.dicomweb.helpers import (
    PATIENT,
    STOW,
    cr_image,
    delivery_state,
    private,
    related,
    sequence,
    wait_status,
)
from tests.dicomweb.orthanc import Orthanc, need_orthanc, series_by_modality
from tests.dicomweb.test_writers import check_sr

pytestmark = pytest.mark.slow

SETTLED = delivery_state("delivered", "failed", "skipped")


@pytest.fixture(autouse=True)
def _orthanc_installed() -> None:
    need_orthanc()


def pacs_settings(tmp: Path, database_url: str, orthanc: Orthanc, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "pacs_dicomweb_url": orthanc.dicomweb,
        "pacs_sweep_interval_s": 0.5,
        "pacs_retry_base_s": 0.5,
        "pacs_retry_max_s": 2.0,
        "pacs_timeout_s": 30.0,
    }
    values.update(extra)
    return make_settings(tmp, database_url, **values)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client


async def stow(client: httpx.AsyncClient, image: bytes) -> str:
    body, headers = related(image)
    r = await client.post(STOW, content=body, headers=headers)
    assert r.status_code == 200, r.text
    [item] = sequence(r.json(), "00081199")
    task_id: str = private(item, 2)
    return task_id


def study_of(image: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(image), stop_before_pixels=True).StudyInstanceUID)


async def check_study(
    client: httpx.AsyncClient, orthanc: Orthanc, image: bytes, status: dict[str, Any]
) -> None:
    """The PACS's study now holds the source, the SR and the heatmap, with the result in them."""
    delivery = status["pacs_delivery"]
    assert delivery["state"] == "delivered", status
    series = series_by_modality(orthanc, study_of(image))
    assert set(series) == {"CR", "SR", "OT"}, list(series)
    assert series["SR"]["MainDicomTags"]["SeriesInstanceUID"] == delivery["sr_series_instance_uid"]
    assert (
        series["OT"]["MainDicomTags"]["SeriesInstanceUID"]
        == (delivery["image_series_instance_uid"])
    )
    r = await client.get(f"/api/v1/analyze/result/{status['session_id']}")
    result = AnalysisResult.model_validate_json(r.content)
    [sr_id] = series["SR"]["Instances"]
    check_sr(pydicom.dcmread(io.BytesIO(orthanc.instance_file(sr_id))), image, result)
    [sc_id] = series["OT"]["Instances"]
    sc = pydicom.dcmread(io.BytesIO(orthanc.instance_file(sc_id)))
    assert sc.BurnedInAnnotation == "YES" and sc.StudyInstanceUID == study_of(image)
    assert str(sc.PatientID) == PATIENT["PatientID"]
    heatmap = result.heatmap_bytes()
    assert heatmap is not None
    from PIL import Image

    with Image.open(io.BytesIO(heatmap[0])) as panels:
        assert sc.Rows > panels.height and sc.Columns >= panels.width  # panels + the banner


async def test_results_go_back_into_the_study_as_sr_and_heatmap_series(
    tmp_path: Path, database_url: str
) -> None:
    orthanc = Orthanc(tmp_path / "pacs").start()
    try:
        image = cr_image()
        orthanc.store(image)  # the PACS holds the original, as it would
        settings = pacs_settings(tmp_path / "app", database_url, orthanc)
        async with running(settings) as (_app, client):
            started = time.monotonic()
            task_id = await stow(client, image)
            status = await wait_status(client, task_id, SETTLED, timeout=170)
            elapsed = time.monotonic() - started
            await check_study(client, orthanc, image, status)
            assert status["pacs_delivery"]["attempts"] == 1
            print(f"STOW-RS in to SR + heatmap in Orthanc: {elapsed:.1f} s (models loaded cold)")
    finally:
        orthanc.stop()


async def test_a_pacs_that_is_down_gets_the_results_when_it_returns(
    tmp_path: Path, database_url: str
) -> None:
    orthanc = Orthanc(tmp_path / "pacs")  # not started: the PACS is down
    settings = pacs_settings(tmp_path / "app", database_url, orthanc)
    image = cr_image()
    try:
        async with running(settings) as (app, client):
            # Results committed without waking the sender (as Celery workers in other processes
            # commit them): the sweep alone must find them.
            parts(app).pipeline.finish_listeners.clear()
            task_id = await stow(client, image)
            retrying = await wait_status(
                client, task_id, lambda s: (s.get("pacs_delivery") or {}).get("attempts", 0) >= 2
            )
            delivery = retrying["pacs_delivery"]
            assert delivery["state"] in {"retrying", "sending"}, delivery
            assert "unreachable" in delivery["last_error"]
            orthanc.start()
            status = await wait_status(client, task_id, SETTLED, timeout=60)
            orthanc.store(image)
            await check_study(client, orthanc, image, status)
    finally:
        orthanc.stop()


async def test_nothing_is_lost_when_medsight_restarts_while_the_pacs_is_down(
    tmp_path: Path, database_url: str
) -> None:
    orthanc = Orthanc(tmp_path / "pacs")
    settings = pacs_settings(tmp_path / "app", database_url, orthanc)
    image = cr_image()
    try:
        async with running(settings) as (_app, client):
            task_id = await stow(client, image)
            await wait_status(client, task_id, delivery_state("retrying"))
            identity = client.cookies["medsight_anon"]  # the same anonymous owner after restart
        # MedSight is gone; the PACS comes back; MedSight starts again on the same data.
        orthanc.start()
        orthanc.store(image)
        async with running(settings) as (_app, client):
            client.headers["X-Anonymous-Id"] = identity
            status = await wait_status(client, task_id, SETTLED, timeout=60)
            await check_study(client, orthanc, image, status)
            assert status["pacs_delivery"]["attempts"] >= 2
    finally:
        orthanc.stop()
