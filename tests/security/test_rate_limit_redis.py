"""With REDIS_URL set, every worker shares one rate-limit count."""

from __future__ import annotations

import os
import secrets

import pytest

from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for

REDIS_URL = os.environ.get("REDIS_URL")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set (needs a real Redis)"),
]


async def test_two_workers_share_the_limit_through_redis(app_with) -> None:
    peer = "10.{}.{}.{}".format(*secrets.token_bytes(3))  # fresh key: Redis outlives test runs
    limits = {"rate_limit_login": "3/minute", "redis_url": REDIS_URL}
    async with app_with(**limits) as worker_a, app_with(**limits) as worker_b:
        async with client_for(worker_a, peer) as a, client_for(worker_b, peer) as b:
            body = {"email": "nobody@example.org", "password": "p" * 12}
            for client in (a, a, b):
                assert (await client.post("/api/v1/auth/login", json=body)).status_code == 401
            r = await b.post("/api/v1/auth/login", json=body)
            assert_problem(r, 429)
            assert int(r.headers["retry-after"]) > 0
