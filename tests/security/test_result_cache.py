"""Cached results keep the database's answer: owner checked on every read, deletions seen."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, event

from backend.db.models import Analysis, Job
from backend.db.session import transaction
from tests.conftest import parts
from tests.integration.test_foundation import assert_problem
from tests.security.conftest import client_for, finished_analysis, fresh_peer, register_and_login


async def test_cached_results_are_owner_checked_and_deletions_are_seen(app_with: Any) -> None:
    async with app_with(auth_required=True, result_cache_revalidate_s=0.5) as app:
        state = parts(app)
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            bob = await register_and_login(client)
            session_id = await finished_analysis(client, alice["headers"])
            url = f"/api/v1/analyze/result/{session_id}"
            first = await client.get(url, headers=alice["headers"])
            assert first.status_code == 200
            assert state.results.fresh(session_id, alice["id"]) is not None  # now cached
            # Another user never gets the cached body.
            assert_problem(await client.get(url, headers=bob["headers"]), 404)
            # Another replica deletes the analysis (this process is not told).
            async with transaction(state.sessionmaker) as session:
                await session.execute(delete(Job).where(Job.analysis_id == session_id))
                await session.execute(delete(Analysis).where(Analysis.id == session_id))
            # Within RESULT_CACHE_REVALIDATE_S the cached body may still be served; after it,
            # the row is read again and the deletion is a 404.
            await asyncio.sleep(0.6)
            assert_problem(await client.get(url, headers=alice["headers"]), 404)


async def test_erasing_an_account_drops_its_cached_results(app_with: Any) -> None:
    async with app_with(auth_required=True) as app:
        state = parts(app)
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            session_id = await finished_analysis(client, alice["headers"])
            url = f"/api/v1/analyze/result/{session_id}"
            assert (await client.get(url, headers=alice["headers"])).status_code == 200
            assert state.results.fresh(session_id, alice["id"]) is not None
            r = await client.delete("/api/v1/users/me", headers=alice["headers"])
            assert r.status_code == 204, r.text
            assert state.results.fresh(session_id, alice["id"]) is None


async def test_concurrent_reads_due_for_the_check_make_one_query(app_with: Any) -> None:
    async with app_with(auth_required=True, result_cache_revalidate_s=0.3) as app:
        state = parts(app)
        async with client_for(app, fresh_peer()) as client:
            alice = await register_and_login(client)
            session_id = await finished_analysis(client, alice["headers"])
            url = f"/api/v1/analyze/result/{session_id}?heatmap=url"
            first = await client.get(url, headers=alice["headers"])
            assert first.status_code == 200
            await asyncio.sleep(0.4)  # the entry is now due for its check
            statements: list[str] = []

            def seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                statements.append(statement)

            event.listen(state.engine.sync_engine, "before_cursor_execute", seen)
            try:
                answers = await asyncio.gather(
                    *(client.get(url, headers=alice["headers"]) for _ in range(20))
                )
            finally:
                event.remove(state.engine.sync_engine, "before_cursor_execute", seen)
            assert {r.status_code for r in answers} == {200}
            assert {r.content for r in answers} == {first.content}
            assert {r.headers["etag"] for r in answers} == {first.headers["etag"]}
            checks = [s for s in statements if "FROM analyses" in s]
            assert len(checks) == 1, checks
