"""The request middleware: an access log line per request at ordinary rates, sampled at high
rates, every error always, written by a listener thread with the request's id; security
headers once each; the body size limit."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend import logs
from backend.api.middleware import AccessLog
from backend.main import create_app
from tests.conftest import make_settings
from tests.security.conftest import client_for


def test_sampling_keeps_every_error_and_slow_request_and_counts_the_rest() -> None:
    now = [100.0]
    access = AccessLog(full_per_s=10, sample_every=50, slow_ms=500, clock=lambda: now[0])
    ok = [access.sample(200, 1.0) for _ in range(1000)]
    errors = [access.sample(status, 1.0) for status in (400, 401, 404, 429, 500, 503) * 50]
    slow = [access.sample(200, 600.0) for _ in range(20)]
    logged = [factor for factor in ok if factor is not None]
    assert ok[:10] == [1] * 10  # the first ten of the second: every one
    assert logged[10:] == [50] * 20  # then one in fifty, marked so counts scale back
    assert errors == [1] * len(errors)  # never sampled away
    assert slow == [1] * 20
    now[0] = 101.0  # a new second: every request again, up to the rate
    assert [access.sample(200, 1.0) for _ in range(3)] == [1, 1, 1]


async def test_errors_are_logged_even_when_successes_are_sampled_away(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        log_level="INFO",
        access_log_full_per_s=0,
        access_log_sample_every=1_000_000,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as client:
        caplog.set_level(logging.INFO, logger="medsight.access")
        for _ in range(20):
            assert (await client.get("/api/v1/health")).status_code == 200
        missing = await client.get("/api/v1/analyze/status/no-such-task")
        assert missing.status_code == 404
        denied = await client.get("/metrics", headers={"X-Request-ID": "denied-1"})
    lines = [r for r in caplog.records if r.name == "medsight.access"]
    assert [(r.path, r.status) for r in lines] == [  # type: ignore[attr-defined]
        ("/api/v1/analyze/status/no-such-task", 404),
        *([("/metrics", denied.status_code)] if denied.status_code >= 400 else []),
    ]


def test_lines_are_written_by_the_listener_with_their_request_id(
    capfd: pytest.CaptureFixture[str],
) -> None:
    logs.configure_logging("INFO", json_logs=True)
    root = logging.getLogger()
    assert any(isinstance(h, logging.handlers.QueueHandler) for h in root.handlers)
    token = logs.request_id_var.set("req-42")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("medsight.test").exception("it failed", extra={"answer": 42})
    finally:
        logs.request_id_var.reset(token)
    logs._stop_listener()  # flushes the queue, as at exit
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if "it failed" in line
    ]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "req-42"  # the logging request's, though written elsewhere
    assert line["answer"] == 42 and line["level"] == "ERROR"
    assert "ValueError: boom" in line["exc_info"]
    logs.configure_logging("WARNING", json_logs=True)


def test_a_forked_child_still_writes_its_log_lines(capfd: pytest.CaptureFixture[str]) -> None:
    """A Celery prefork worker is forked after logging is configured: it gets its own writer."""
    logs.configure_logging("INFO", json_logs=True)
    pid = os.fork()
    if pid == 0:  # the child
        try:
            logging.getLogger("medsight.test").warning("from the child")
            logs._stop_listener()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    logs._stop_listener()
    assert "from the child" in capfd.readouterr().err
    logs.configure_logging("WARNING", json_logs=True)


async def test_every_response_gets_the_security_headers_once(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health", headers={"X-Request-ID": "abc"})
    names = [name.lower() for name, _ in response.headers.multi_items()]
    for header in ("x-request-id", "x-content-type-options", "content-security-policy"):
        assert names.count(header) == 1, names
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    ("http_version", "headers"),
    [("2", []), ("1.1", [(b"transfer-encoding", b"chunked")])],
)
async def test_a_body_without_content_length_is_limited_while_streaming(
    http_version: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """Only an HTTP/1 request without Transfer-Encoding skips the streaming count (its body is
    framed by a Content-Length already checked, or absent): HTTP/2 and chunked bodies do not."""
    from backend.api.middleware import BodySizeLimitMiddleware

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True} for _ in range(3)]
    chunks.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "http_version": http_version, "path": "/", "headers": headers}
    await BodySizeLimitMiddleware(reader, max_bytes=1000)(scope, receive, send)
    assert sent[0]["status"] == 413
