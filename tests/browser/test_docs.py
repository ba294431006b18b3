"""/docs in Chromium with everything outside loopback blocked: Swagger UI still lists the API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from backend.api.docs import assets_dir
from tests.browser.conftest import new_viewer
from tests.e2e.server import Server, free_port, make_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if assets_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("fastapi-offline is not installed (requirements.txt)")
        pytest.skip("fastapi-offline is not installed")
    # Swagger needs no model: the server answers /docs without loading any (so it is never
    # "ready"; liveness is what to wait for).
    data_dir = tmp_path_factory.mktemp("docs")
    port = free_port()
    server = Server(
        url=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        env=make_env(data_dir, PRELOAD_MODELS="false", ENVIRONMENT="development"),
    )
    server.start(wait_ready=False)
    try:
        yield server
    finally:
        server.stop()


def test_swagger_ui_lists_the_operations_offline(browser: Any, docs_server: Server) -> None:
    viewer = new_viewer(browser, docs_server.url)
    try:
        viewer.open("/docs")
        page = viewer.page
        page.wait_for_selector(".opblock", timeout=30_000)
        summaries = page.locator(".opblock-summary-path").all_inner_texts()
        paths = {s.replace("\u200b", "").strip() for s in summaries}
        assert "/api/v1/analyze" in paths and "/api/v1/health/ready" in paths, paths
        assert len(paths) >= 20
        # ReDoc's bundle shows a footer logo from its vendor's CDN: the page's CSP refuses it in
        # the browser (a console error), so no request leaves.
        viewer.expect_error(r"Content Security Policy|ERR_BLOCKED")
        viewer.open("/redoc")
        # ReDoc renders one section per operation.
        page.wait_for_selector("[data-section-id^='operation/']", state="attached")
        assert page.locator("[data-section-id^='operation/']").count() >= 20
        assert not viewer.blocked, f"/docs asked for other hosts: {viewer.blocked}"
        assert not viewer.unexpected_errors(), viewer.errors
    finally:
        viewer.page.context.close()
