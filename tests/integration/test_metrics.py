"""`GET /metrics`: latency by route template, queue depth, stage durations, models, memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from backend.main import create_app
from backend.observability import install_metrics
from tests.conftest import fixture_images, make_settings, parts

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def jobs(snapshot: Samples, status: str) -> float:
    return value(snapshot, "medsight_queue_jobs", status=status) or 0.0


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.fixture
async def metrics_app(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(tmp_path, database_url, rate_limit_analyze="100000/hour")
    app = create_app(settings)  # its lifespan records every pipeline run in the app's metrics
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api", timeout=30)


async def test_request_latency_is_labelled_by_route_template(metrics_app: FastAPI) -> None:
    async with client_for(metrics_app) as client:
        for _ in range(3):
            assert (await client.get("/api/v1/health")).status_code == 200
        assert (await client.get("/api/v1/analyze/status/some-unknown-id")).status_code == 404
        assert (await client.get("/no/such/path/123")).status_code == 404
        samples = await scrape(client)
    count = "medsight_http_request_duration_seconds_count"
    assert value(samples, count, route="/api/v1/health", method="GET", status="200") == 3
    template = "/api/v1/analyze/status/{task_id}"
    assert value(samples, count, route=template, method="GET", status="404") == 1
    assert value(samples, count, route="<unmatched>", method="GET", status="404") == 1
    # Raw paths never become labels (ids would make the series unbounded).
    assert not any("some-unknown-id" in str(labels) for _, labels in samples)
    assert not any("/no/such" in str(labels) for _, labels in samples)


async def test_analysis_updates_queue_depth_stage_durations_and_model_state(
    metrics_app: FastAPI,
) -> None:
    image = fixture_images()[0]
    async with client_for(metrics_app) as client:
        before = await scrape(client)  # the database is shared with other tests: use deltas
        accepted = await client.post(
            "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}
        )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = (await client.get(f"/api/v1/analyze/status/{task_id}")).json()["status"]
            if status in {"complete", "partial", "failed"}:
                break
            await asyncio.sleep(0.1)
        assert status in {"complete", "partial", "failed"}, status
        # The job row is marked done just after the analysis row is written: scrape until then.
        samples = await scrape(client)
        while time.monotonic() < deadline and jobs(samples, "done") < jobs(before, "done") + 1:
            await asyncio.sleep(0.1)
            samples = await scrape(client)
        session_id = accepted.json()["session_id"]
        result = (await client.get(f"/api/v1/analyze/result/{session_id}")).json()

    statuses = ("queued", "running", "done", "failed", "cancelled")
    assert sum(jobs(samples, s) for s in statuses) == sum(jobs(before, s) for s in statuses) + 1
    assert jobs(samples, "done") >= jobs(before, "done") + 1
    # The input stage ran: its duration is in the histogram, as is the whole pipeline's.
    assert value(samples, "medsight_stage_duration_seconds_count", stage="input") == 1
    assert value(samples, "medsight_stage_duration_seconds_count", stage="total") == 1
    total = value(samples, "medsight_stage_duration_seconds_sum", stage="total")
    assert total is not None and total == pytest.approx(result["timings"]["total_ms"] / 1000)
    overall = result["overall_status"]
    assert value(samples, "medsight_analyses_total", overall_status=overall) == 1
    # Every registered model reports exactly one current state.
    vision_states = {
        dict(labels)["state"]: v
        for (name, labels), v in samples.items()
        if name == "medsight_model_state" and dict(labels)["model"] == "vision"
    }
    assert sum(vision_states.values()) == 1, vision_states
    rss = value(samples, "medsight_device_memory_bytes", device="cpu", kind="rss")
    assert rss is not None and rss > 10 * 2**20


async def test_each_app_has_its_own_registry(tmp_path: Path, database_url: str) -> None:
    first = create_app(make_settings(tmp_path / "a", database_url))
    second = create_app(make_settings(tmp_path / "b", database_url))
    assert install_metrics(first) is first.state.metrics  # installing twice changes nothing
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        async with client_for(first) as a, client_for(second) as b:
            await a.get("/api/v1/health")
            await a.get("/api/v1/health")
            samples_a, samples_b = await scrape(a), await scrape(b)
    count = "medsight_http_request_duration_seconds_count"
    assert value(samples_a, count, route="/api/v1/health", method="GET", status="200") == 2
    assert value(samples_b, count, route="/api/v1/health", method="GET", status="200") is None


async def test_metrics_token_protects_the_endpoint(metrics_app: FastAPI) -> None:
    parts(metrics_app).settings.metrics_token = "scrape-token-for-tests"  # METRICS_TOKEN
    async with client_for(metrics_app) as client:
        denied = await client.get("/metrics")
        assert denied.status_code == 401
        assert denied.headers["content-type"].startswith("application/problem+json")
        allowed = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-token-for-tests"}
        )
        assert allowed.status_code == 200
        assert "medsight_queue_jobs" in allowed.text
