"""Drift monitoring through the real app: real X-rays analysed, then GET /api/v1/monitoring/drift.

With DRIFT_WINDOW=40 and DRIFT_MIN_N=20: 24 normals of the development TEST split (never part of
the reference, which is built from VAL) leave the status ok; 40 X-rays of another population
(the paediatric viral-pneumonia images of the same TEST split) then turn it to warning or drift.
The app runs on a database of its own, so other tests' analyses never enter the window.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from backend.db.migrate import upgrade_database
from backend.db.models import DriftObservation
from backend.main import create_app
from backend.monitoring.service import DriftMonitor
from tests.conftest import make_settings, parts, shared_data
from tests.integration.test_metrics import parse, value


def split_images(finding: str, n: int) -> list[Path]:
    """The first `n` TEST-split images of a finding, by id (deterministic)."""
    root = shared_data("cxr-dev")
    with (root / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test" and r["finding"] == finding]
    rows.sort(key=lambda r: r["id"])
    return [root / "images" / f"{r['id']}.png" for r in rows[:n]]


@pytest.fixture
def drift_db(tmp_path: Path) -> str:
    """A database of this test's own (built by Alembic): no other test's analyses in it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'drift.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
async def drift_app(tmp_path: Path, drift_db: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path,
        drift_db,
        rate_limit_analyze="100000/hour",
        drift_window=40,
        drift_min_n=20,
        worker_concurrency=2,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def analyse_all(client: httpx.AsyncClient, images: list[Path]) -> list[dict[str, Any]]:
    """Upload every image, then wait for every result."""
    accepted = []
    for path in images:
        r = await client.post("/api/v1/analyze", files={"image": (path.name, path.read_bytes())})
        assert r.status_code == 202, r.text
        accepted.append(r.json())
    return await wait_all(client, accepted)


async def wait_all(
    client: httpx.AsyncClient, accepted: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    results = []
    deadline = time.monotonic() + 300
    for ids in accepted:
        while time.monotonic() < deadline:
            status = (await client.get(f"/api/v1/analyze/status/{ids['task_id']}")).json()
            if status["status"] in {"complete", "partial", "failed"}:
                break
            await asyncio.sleep(0.2)
        result = await client.get(f"/api/v1/analyze/result/{ids['session_id']}")
        assert result.status_code == 200, result.text
        results.append(result.json())
    return results


async def drift(client: httpx.AsyncClient, app: FastAPI) -> dict[str, Any]:
    await parts(app).state.get(DriftMonitor).flush()
    r = await client.get("/api/v1/monitoring/drift")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_reference_normals_stay_ok_and_another_population_drifts(
    drift_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = parts(drift_app).state.get(DriftMonitor)
    assert "drift_check" in {job.id for job in drift_app.state.medsight_scheduler.get_jobs()}
    normals = split_images("Normal", 24)
    children = split_images("Viral Pneumonia", 40)
    transport = httpx.ASGITransport(app=drift_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=60) as client:
        empty = await drift(client, drift_app)
        assert empty["status"] == "ok" and empty["statistic"] is None and empty["n"] == 0
        assert empty["window"] == 40 and empty["min_n"] == 20
        assert empty["reference"]["kind"] == "shipped"
        assert empty["reference"]["n_normal"] == 300 and empty["reference"]["n_abnormal"] == 375

        results = await analyse_all(client, normals[:12])
        few = await drift(client, drift_app)
        assert few["n"] == 12 and few["status"] == "ok" and few["statistic"] is None
        assert "DRIFT_MIN_N" in few["detail"]

        # Every result says which reference it was scored against (Provenance.calibration).
        results += await analyse_all(client, normals[12:])
        for result in results:
            calibration = result["provenance"]["calibration"]
            assert calibration["kind"] == "shipped"
            assert calibration["id"] == empty["reference"]["id"]
        ok = await drift(client, drift_app)
        assert ok["n"] == 24
        assert ok["status"] == "ok", ok
        assert ok["statistic"] < ok["thresholds"]["warning"]

        # Every normal is inside the reference population; most of the children's films are
        # flagged by the acquisition check (38 of these 40), and their results say so.
        assert not any("outside the population" in w for r in results for w in r["warnings"])
        child_results = await analyse_all(client, children)
        flagged = [
            r
            for r in child_results
            if any("outside the population" in w and "no normals of" in w for w in r["warnings"])
        ]
        assert len(flagged) >= 34, [r["warnings"] for r in child_results]
        # The scheduler's job logs the change (ok -> warning or drift).
        await monitor.flush()
        with caplog.at_level("WARNING", logger="backend.monitoring.service"):
            logged = await monitor.check_now()
        assert logged is not None
        changed = [r for r in caplog.records if r.getMessage() == "drift status changed"]
        assert len(changed) == 1 and changed[0].levelname == "WARNING"
        assert changed[0].__dict__["to"] == logged.status
        shifted = await drift(client, drift_app)
        assert shifted["n"] == 40  # the window: the last 40, all of the other population
        assert shifted["status"] in {"warning", "drift"}, shifted
        assert shifted["statistic"] >= shifted["thresholds"]["warning"]
        assert "see docs/monitoring.md" in shifted["detail"]
        assert shifted["outside_population"] >= 0.85

        # The same check is exported to Prometheus.
        samples = parse((await client.get("/metrics")).text)
    assert value(samples, "medsight_drift_status", status=shifted["status"]) == 1.0
    assert value(samples, "medsight_drift_status", status="ok") == 0.0
    assert value(samples, "medsight_drift_window_size") == 40
    assert value(samples, "medsight_drift_statistic") == pytest.approx(shifted["statistic"])
    async with parts(drift_app).sessionmaker() as session:
        rows = await session.scalar(select(func.count(DriftObservation.id)))
    assert rows == 64  # one observation per finished analysis


async def test_an_image_outside_the_reference_population_is_scored_with_a_warning(
    drift_app: FastAPI,
) -> None:
    # A real normal X-ray exported far too dark (intensities x 0.35): still accepted as a chest
    # X-ray, but its brightness is outside every validation X-ray's.
    normal = split_images("Normal", 1)[0]
    dark = (cv2.imread(str(normal), cv2.IMREAD_GRAYSCALE) * 0.35).astype(np.uint8)
    ok, png = cv2.imencode(".png", dark)
    assert ok
    transport = httpx.ASGITransport(app=drift_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=60) as client:
        [plain] = await analyse_all(client, [normal])
        accepted = await client.post(
            "/api/v1/analyze", files={"image": ("dark.png", png.tobytes(), "image/png")}
        )
        assert accepted.status_code == 202, accepted.text
        [result] = await wait_all(client, [accepted.json()])
        await parts(drift_app).state.get(DriftMonitor).flush()
        report = await drift(client, drift_app)
    assert not any("outside the population" in w for w in plain["warnings"])
    assert result["vision"] is not None  # scored, not withheld
    warning = [w for w in result["warnings"] if "outside the population" in w]
    assert len(warning) == 1 and "brightness" in warning[0], result["warnings"]
    assert warning[0] in result["report_text"]  # the narrative (and the PDF) carry it
    assert report["outside_population"] == 0.5  # one of the two observations
