"""Rate limits: per user when signed in, per address otherwise; 429 problem+json + Retry-After."""

from __future__ import annotations

import itertools

import pytest
from fastapi import FastAPI

from tests.conftest import fixture_images
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import (
    cancel_leftover_jobs,
    client_for,
    fresh_peer,
    pause_workers,
    register_and_login,
    upload,
)


async def test_eleventh_analysis_within_the_hour_is_429(quiet_app: FastAPI) -> None:
    images = itertools.cycle(fixture_images())
    async with client_for(quiet_app, fresh_peer()) as client:
        user = await register_and_login(client)
        neighbour = await register_and_login(client)  # same address, different user
        for i in range(10):
            r = await upload(client, user["headers"], next(images), symptoms=f"cough day {i}")
            assert r.status_code == 202, r.text
        r = await upload(client, user["headers"], next(images))
        body = assert_problem(r, 429)
        assert body["code"] == "rate_limited"
        retry = int(r.headers["retry-after"])
        assert 3000 < retry <= 3600  # the window is an hour and it began seconds ago
        # The limit is per user: someone else behind the same address is not affected.
        r = await upload(client, neighbour["headers"], next(images))
        assert r.status_code == 202, r.text


async def test_anonymous_callers_are_limited_per_address(app_with) -> None:
    async with app_with(rate_limit_analyze="2/hour") as app:
        await pause_workers(app)
        try:
            image = fixture_images()[0]
            # Fresh addresses per run: with REDIS_URL the counters outlive the test process.
            async with client_for(app, fresh_peer()) as client:
                for _ in range(2):
                    assert (await upload(client, {}, image)).status_code == 202
                r = await upload(client, {}, image)
                assert_problem(r, 429)
                assert "retry-after" in r.headers
                # Forging X-Forwarded-For (no trusted proxy configured) does not reset it.
                r = await client.post(
                    "/api/v1/analyze",
                    files={"image": (image.name, image.read_bytes(), "image/png")},
                    headers={"X-Forwarded-For": "203.0.113.200"},
                )
                assert_problem(r, 429)
            async with client_for(app, fresh_peer()) as other:
                assert (await upload(other, {}, image)).status_code == 202
        finally:
            await cancel_leftover_jobs(app)


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register"])
async def test_sign_in_routes_are_limited_per_address(app_with, path: str) -> None:
    async with app_with(rate_limit_login="3/minute") as app, client_for(app, fresh_peer()) as c:
        for i in range(3):
            r = await c.post(path, json={"email": f"x{i}@example.org", "password": "p" * 12})
            assert r.status_code != 429
        r = await c.post(path, json={"email": "y@example.org", "password": "p" * 12})
        assert_problem(r, 429)
        assert 0 < int(r.headers["retry-after"]) <= 60
