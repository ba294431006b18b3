"""Cached result reads answered below the router (`backend/analysis/hot_reads.py`).

The short path must give the route's answer byte for byte, audit every read, and never answer
what the route would refuse: a revoked token, another user's result, an API key, a forged token.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from backend.analysis.hot_reads import HotResultReads
from backend.db.models import AuditEvent
from tests.conftest import parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for, finished_analysis, fresh_peer, register_and_login

# What the middleware around both paths adds per request (they differ by request).
_PER_REQUEST = {"x-request-id", "date", "server"}


def hot_layer(app: FastAPI) -> HotResultReads:
    layer: Any = app.middleware_stack
    while layer is not None and not isinstance(layer, HotResultReads):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, HotResultReads), "the hot read layer is not in the stack"
    return layer


def comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in _PER_REQUEST)
    return response.status_code, response.content, headers


async def audited_reads(
    app: FastAPI, session_id: str, actor_id: str, *, spooled: bool = False
) -> int:
    """`result.read` events of this reader and result in the chain (`spooled`: with a key)."""
    state = parts(app)
    await state.audit.drained()
    query = (
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action == "result.read",
            AuditEvent.resource_id == session_id,
            AuditEvent.actor_id == actor_id,
        )
    )
    if spooled:
        query = query.where(AuditEvent.event_key.is_not(None))
    async with state.sessionmaker() as session:
        return int(await session.scalar(query) or 0)


async def test_the_short_path_answers_as_the_route_does_and_audits_each_read(
    app_with: Any,
) -> None:
    async with app_with(auth_required=True) as app:
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            session_id = await finished_analysis(client, alice["headers"])
            layer = hot_layer(app)
            url = f"/api/v1/analyze/result/{session_id}"
            for query in ("", "?heatmap=inline", "?heatmap=url", "?heatmap=none"):
                before = layer.answered
                routed = await client.get(url + query, headers=alice["headers"])  # fills caches
                short = await client.get(url + query, headers=alice["headers"])
                assert routed.status_code == 200, routed.text
                assert layer.answered - before >= 1, f"{query}: the short path did not answer"
                assert comparable(short) == comparable(routed), query
                assert short.headers["x-request-id"] != routed.headers["x-request-id"]
                assert short.headers["x-content-type-options"] == "nosniff"
                # A revalidation: 304 with the same ETag, no body.
                conditional = {**alice["headers"], "If-None-Match": short.headers["etag"]}
                again = await client.get(url + query, headers=conditional)
                assert again.status_code == 304 and again.content == b""
                assert again.headers["etag"] == routed.headers["etag"]
            # 4 forms x 3 reads, every one audited (the short path's too).
            assert await audited_reads(app, session_id, alice["id"]) == 12
            # The request metric is labelled with the route's template, as for routed reads.
            metrics = (await client.get("/metrics")).text
            assert 'route="/api/v1/analyze/result/{session_id}"' in metrics


async def test_the_short_path_never_answers_what_the_route_refuses(app_with: Any) -> None:
    async with app_with(auth_required=True) as app:
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            bob = await register_and_login(client)
            session_id = await finished_analysis(client, alice["headers"])
            layer = hot_layer(app)
            url = f"/api/v1/analyze/result/{session_id}?heatmap=url"
            assert (await client.get(url, headers=alice["headers"])).status_code == 200
            assert (await client.get("/api/v1/auth/me", headers=bob["headers"])).is_success
            before = layer.answered

            # Bob's token is cached and valid, alice's result is cached: still not his.
            assert_problem(await client.get(url, headers=bob["headers"]), 404)
            # A forged token (never decoded here) and a tampered copy of alice's.
            forged = {"Authorization": "Bearer " + alice["access_token"][:-4] + "AAAA"}
            assert_problem(await client.get(url, headers=forged), 401)
            # A token and an API key together are refused by the route, not served.
            both = {**alice["headers"], "X-API-Key": "msk_not_a_real_key"}
            assert_problem(await client.get(url, headers=both), 401)
            # A query the route would read differently is the route's.
            assert (await client.get(url + "&x=1", headers=alice["headers"])).status_code == 200
            assert layer.answered == before

            # Alice signs out: her access token is revoked in this process at once.
            assert (await client.get(url, headers=alice["headers"])).status_code == 200
            assert layer.answered == before + 1
            logout = await client.post("/api/v1/auth/logout", headers=alice["headers"])
            assert logout.status_code == 204
            assert_problem(await client.get(url, headers=alice["headers"]), 401)
            assert layer.answered == before + 1
