"""Deployment settings: the seed's configuration starts, Spaces framing, /docs without a CDN."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.accounts.google import check_return_to
from backend.api.app import create_app
from backend.api.docs import assets_dir
from backend.config import ConfigError, Settings
from tests.conftest import make_settings

SECRETS = {"secret_key": "k" * 40 + "Qz9", "jwt_secret_key": "j" * 40 + "Wx7"}


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]


def test_pulmonary_without_its_weights_stops_start_up_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        settings(tmp_path, vision_anomaly_backend="pulmonary")
    message = str(err.value)
    assert "VISION_VGG16_WEIGHTS" in message and "VISION_MODEL_DIR" in message
    assert "VISION_ANOMALY_BACKEND=auto" in message  # and what works instead


def test_pulmonary_with_a_vgg16_checkpoint_and_weights_is_accepted(tmp_path: Path) -> None:
    model = tmp_path / "vgg-model"
    model.mkdir()
    (model / "metadata.json").write_text(json.dumps({"backbone": "vgg16"}))
    weights = tmp_path / "vgg16-397923af.pth"
    weights.write_bytes(b"\0")
    s = settings(
        tmp_path,
        vision_anomaly_backend="pulmonary",
        vision_model_dir=model,
        vision_vgg16_weights=weights,
    )
    assert s.vision_anomaly_backend == "pulmonary"


def test_vision_backend_names(tmp_path: Path) -> None:
    assert settings(tmp_path, vision_anomaly_backend="ONNX").vision_anomaly_backend == "onnx"
    with pytest.raises(ValueError, match="auto, torch, onnx or pulmonary"):
        settings(tmp_path, vision_anomaly_backend="tensorrt")


def test_r2_is_s3_with_the_account_endpoint(tmp_path: Path) -> None:
    s = settings(tmp_path, storage_backend="r2", r2_account_id="abc123", s3_bucket="scans")
    assert s.storage_backend == "s3"
    assert s.s3_endpoint_url == "https://abc123.r2.cloudflarestorage.com"
    assert s.s3_region == "auto"
    explicit = settings(tmp_path, storage_backend="r2", s3_endpoint_url="https://r2.example")
    assert explicit.s3_endpoint_url == "https://r2.example"
    with pytest.raises(ConfigError, match="R2_ACCOUNT_ID"):
        settings(tmp_path, storage_backend="r2")


def test_frontend_url_is_allowed_for_cors_and_is_the_default_return(tmp_path: Path) -> None:
    s = settings(tmp_path, frontend_url="https://app.hospital.example/medsight/")
    assert s.frontend_url == "https://app.hospital.example/medsight"
    assert "https://app.hospital.example" in s.allowed_origins
    assert check_return_to(s, None) == "https://app.hospital.example/medsight"
    assert check_return_to(s, "https://app.hospital.example/x") == "https://app.hospital.example/x"
    with pytest.raises(ValueError, match="FRONTEND_URL"):
        settings(tmp_path, frontend_url="javascript:alert(1)")


def test_spaces_defaults_only_on_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    here = settings(tmp_path)
    assert here.frame_ancestors == "'none'" and here.trusted_proxies == []
    monkeypatch.setenv("SPACE_ID", "someone/medsight")
    spaces = settings(tmp_path)
    assert spaces.frame_ancestors.startswith("https://huggingface.co")
    assert spaces.trusted_proxies == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    # An operator's own values win.
    own = settings(tmp_path, frame_ancestors="'self'", trusted_proxies="10.1.2.3")
    assert own.frame_ancestors == "'self'" and own.trusted_proxies == ["10.1.2.3"]


@pytest.fixture
async def client_for(tmp_path: Path, database_url: str) -> AsyncIterator[Any]:
    opened: list[Any] = []

    async def make(**overrides: Any) -> httpx.AsyncClient:
        app = create_app(make_settings(tmp_path, database_url, **overrides))
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        opened.append((ctx, client))
        return client

    yield make
    for ctx, client in reversed(opened):
        await client.aclose()
        await ctx.__aexit__(None, None, None)


async def test_framing_follows_frame_ancestors(client_for: Any) -> None:
    default = await client_for()
    for path in ("/", "/api/v1/health"):
        response = await default.get(path)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
    spaces = await client_for(frame_ancestors="https://huggingface.co")
    for path in ("/", "/api/v1/health"):
        response = await spaces.get(path)
        csp = response.headers["content-security-policy"]
        assert re.search(r"frame-ancestors https://huggingface\.co(;|$)", csp), csp
        assert "x-frame-options" not in response.headers  # it cannot name an origin


@pytest.mark.skipif(assets_dir() is None, reason="fastapi-offline is not installed")
async def test_docs_are_served_from_this_app_and_switchable(client_for: Any) -> None:
    dev = await client_for()
    page = await dev.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from another host
    for url in urls:
        assert (await dev.get(url)).status_code == 200, url
    redoc = await dev.get("/redoc")
    assert redoc.status_code == 200 and "fonts.googleapis" not in redoc.text
    off = await client_for(docs_enabled=False)
    assert (await off.get("/docs")).status_code == 404
    assert (await off.get("/openapi.json")).status_code == 404
    prod = await client_for(environment="production", docs_enabled=True, **SECRETS)
    assert (await prod.get("/docs")).status_code == 200
    assert (await prod.get("/openapi.json")).status_code == 200
    prod_default = await client_for(environment="production", **SECRETS)
    assert (await prod_default.get("/docs")).status_code == 404
