"""Fixtures of the DICOMweb tests: one app without a PACS (models load once), a real result."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from backend.contract import AnalysisResult
from backend.main import create_app
from tests.conftest import make_settings
from tests.dicomweb.helpers import STOW, cr_image, finished, private, related, sequence, wait_status


# Package-scoped: its in-process queue works on the run's shared test database, so it must stop
# before other packages' tests queue jobs it would otherwise claim (and fail: their uploads are
# in other storage folders).
@pytest.fixture(scope="package")
async def stow_app(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[FastAPI]:
    settings = make_settings(tmp_path_factory.mktemp("stow"), database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(stow_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=stow_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="package")
async def analysed(stow_app: FastAPI) -> tuple[bytes, AnalysisResult]:
    """A CR image with a finding (dev-0021) and its real result, received by STOW-RS."""
    image = cr_image()
    body, headers = related(image)
    transport = httpx.ASGITransport(app=stow_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.post(STOW, content=body, headers=headers)
        assert r.status_code == 200, r.text
        [item] = sequence(r.json(), "00081199")
        status = await wait_status(c, private(item, 2), finished)
        r = await c.get(f"/api/v1/analyze/result/{status['session_id']}")
        assert r.status_code == 200, r.text
    return image, AnalysisResult.model_validate_json(r.content)
