"""The service's foundation: health, problem+json errors, request ids, settings, migrations."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from backend import __version__
from backend.api.health import Health
from backend.config import ConfigError, Settings
from backend.db.migrate import check_database

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    for key in ("type", "title", "status", "detail", "instance"):
        assert key in body, body
    assert body["status"] == status
    text = json.dumps(body)
    assert "Traceback" not in text and ".py" not in text and "/work/" not in text
    return body


async def test_health_reports_version_and_uptime(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["version"] and body["uptime_s"] >= 0
    assert Health.model_validate(body).version == __version__  # the documented schema
    assert response.headers["content-type"] == "application/json"
    assert len(response.headers["x-request-id"]) >= 16
    assert response.headers["x-content-type-options"] == "nosniff"
    # Answered before routing (backend.api.health.Liveness), yet labelled like a routed request.
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/health"' in metrics


async def test_request_id_is_echoed_when_safe(client: httpx.AsyncClient) -> None:
    ok = await client.get("/api/v1/health", headers={"X-Request-ID": "abc-123"})
    assert ok.headers["x-request-id"] == "abc-123"
    hostile = await client.get("/api/v1/health", headers={"X-Request-ID": "a b\nc<script>"})
    assert hostile.headers["x-request-id"] != "a b\nc<script>"


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/nope"), 404)
    assert body["instance"] == "/api/v1/nope"


async def test_wrong_method_is_problem_405(client: httpx.AsyncClient) -> None:
    assert_problem(await client.put("/api/v1/health"), 405)


async def test_missing_field_is_problem_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/analyze", data={"symptoms": "cough"})
    body = assert_problem(response, 422)
    assert any(err["field"] == "image" for err in body["errors"])  # type: ignore[union-attr]


async def test_malformed_json_is_problem_422(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    broken = await client.post("/api/v1/auth/login", content=b'{"email": ', headers=headers)
    body = assert_problem(broken, 422)
    assert body["errors"][0]["field"] == "body"  # type: ignore[index]
    assert "not valid JSON" in body["errors"][0]["message"]  # type: ignore[index]
    wrong = await client.post("/api/v1/chat", json={"message": 5})
    body = assert_problem(wrong, 422)
    assert [e["field"] for e in body["errors"]] == ["message"]  # type: ignore[union-attr]


async def test_body_over_limit_is_problem_413(tmp_path: Path, database_url: str) -> None:
    from backend.main import create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, database_url, max_request_body_mb=1, max_upload_size_mb=0.5)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            big = b"\x89PNG\r\n\x1a\n" + b"0" * (2 * 1024 * 1024)
            response = await client.post("/api/v1/analyze", files={"image": ("x.png", big)})
            body = assert_problem(response, 413)
            assert "limit" in str(body["detail"])

            async def chunks():  # no Content-Length: the limit applies while streaming
                yield (
                    b'--zzz\r\nContent-Disposition: form-data; name="image"; '
                    b'filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
                )
                for _ in range(40):
                    yield b"x" * 65536

            streamed = await client.post(
                "/api/v1/analyze",
                content=chunks(),
                headers={"content-type": "multipart/form-data; boundary=zzz"},
            )
            assert_problem(streamed, 413)


async def test_unhandled_error_is_problem_500_without_internals(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("secret at /work/main/backend/x.py line 3")

    app.add_api_route("/api/v1/_boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/v1/_boom")
    body = assert_problem(response, 500)
    assert "secret" not in json.dumps(body)
    assert body["request_id"] == response.headers["x-request-id"]


async def test_openapi_and_docs_served_in_development(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/analyze" in spec["paths"]


def test_production_refuses_weak_secrets(tmp_path: Path) -> None:
    for secret in ("", "short", "changeme-changeme-changeme-changeme-123"):
        with pytest.raises(ConfigError) as info:
            Settings(
                _env_file=None,
                environment="production",
                data_dir=tmp_path,
                secret_key=secret,
                jwt_secret_key="J" * 40,
            )  # type: ignore[call-arg]
        assert "SECRET_KEY" in str(info.value)
    strong = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        data_dir=tmp_path,
        secret_key="k3J9x" * 8,
        jwt_secret_key="Zq81m" * 8,
        audit_hmac_key="Hw7Pe" * 8,
    )
    assert strong.is_production


def test_development_secrets_persist_across_restarts(tmp_path: Path) -> None:
    first = Settings(_env_file=None, environment="development", data_dir=tmp_path)  # type: ignore[call-arg]
    second = Settings(_env_file=None, environment="development", data_dir=tmp_path)  # type: ignore[call-arg]
    assert len(first.jwt_secret_key) >= 32
    assert first.jwt_secret_key == second.jwt_secret_key
    assert first.secret_key == second.secret_key != first.jwt_secret_key
    assert (tmp_path / ".secrets.json").stat().st_mode & 0o077 == 0


def test_settings_come_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PORT", "7861")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///" + str(tmp_path / "x.db"))
    s = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert s.port == 7861
    assert s.allowed_origins == ["https://a.example", "https://b.example"]
    assert s.database_url.endswith("x.db")


def test_migrations_match_models(database_url: str) -> None:
    check_database(database_url)
