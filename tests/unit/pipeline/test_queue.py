"""The durable queue's row logic: atomic claims, retries, recovery of dead workers' jobs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db.base import new_id, utcnow
from backend.db.models import Analysis, Job
from backend.db.session import create_engine, create_sessionmaker
from backend.jobs.store import ClaimedJob, JobStore


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def add_jobs(
    factory: async_sessionmaker[AsyncSession], n: int, **job_kw: object
) -> list[str]:
    ids = []
    async with factory() as session:
        for _ in range(n):
            analysis = Analysis(
                id=new_id(),
                owner_key=f"queue-test-{new_id()}",
                image_key="uploads/x.png",
                image_sha256="0" * 64,
                image_format="png",
                image_width=256,
                image_height=256,
            )
            job = Job(id=new_id(), analysis_id=analysis.id, available_at=utcnow(), **job_kw)
            session.add_all([analysis, job])
            ids.append(job.id)
        await session.commit()
    return ids


async def job_row(factory: async_sessionmaker[AsyncSession], job_id: str) -> tuple[Job, Analysis]:
    async with factory() as session:
        job = await session.scalar(select(Job).where(Job.id == job_id))
        assert job is not None
        analysis = await session.scalar(select(Analysis).where(Analysis.id == job.analysis_id))
        assert analysis is not None
        return job, analysis


async def test_concurrent_claims_never_hand_out_a_job_twice(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    ids = set(await add_jobs(factory, 6))
    store = JobStore(factory)

    async def drain(worker: str) -> list[str]:
        got = []
        while (job := await store.claim(worker)) is not None:
            got.append(job.id)
        return got

    results = await asyncio.gather(*(drain(f"w{i}") for i in range(4)))
    claimed = [j for r in results for j in r if j in ids]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    _, analysis = await job_row(factory, claimed[0])
    assert analysis.status == "running"


async def test_failed_attempts_retry_then_fail_for_good(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    (job_id,) = await add_jobs(factory, 1, max_attempts=2)
    store = JobStore(factory)
    first = ClaimedJob(job_id, (await job_row(factory, job_id))[0].analysis_id, 1, 2)
    assert await store.fail_attempt(first, "boom 1") is True
    job, analysis = await job_row(factory, job_id)
    assert job.status == "queued" and analysis.status == "queued"
    second = ClaimedJob(job_id, job.analysis_id, 2, 2)
    assert await store.fail_attempt(second, "boom 2") is False
    job, analysis = await job_row(factory, job_id)
    assert job.status == "failed" and analysis.status == "failed"
    assert analysis.overall_status == "FAILED" and "boom 2" in (job.last_error or "")
    # The client sees that it failed, not the exception text (kept for operators above).
    assert analysis.error and "boom" not in analysis.error


async def test_jobs_of_a_dead_process_are_requeued_or_failed(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    dead = f"{socket.gethostname()}:999999:local"  # no such pid
    retry_id, exhausted_id = await add_jobs(factory, 2, status="running", claimed_by=dead)
    async with factory() as session:
        for job_id, attempts in ((retry_id, 1), (exhausted_id, 3)):
            job = await session.get(Job, job_id)
            assert job is not None
            job.attempts, job.heartbeat_at = attempts, utcnow()
        await session.commit()
    recovered = await JobStore(factory).recover(stale_after=timedelta(hours=1))
    assert recovered >= 2
    job, _ = await job_row(factory, retry_id)
    assert job.status == "queued" and "stopped" in (job.last_error or "")
    job, analysis = await job_row(factory, exhausted_id)
    assert job.status == "failed" and analysis.overall_status == "FAILED"
    assert "stopped during attempt 3" in (job.last_error or "")
    assert analysis.error and socket.gethostname() not in analysis.error  # no host:pid


async def test_live_workers_jobs_are_left_alone(factory: async_sessionmaker[AsyncSession]) -> None:
    alive = f"{socket.gethostname()}:1:local"  # pid 1 exists
    (job_id,) = await add_jobs(factory, 1, status="running", claimed_by=alive)
    async with factory() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job.heartbeat_at = utcnow()
        await session.commit()
    await JobStore(factory).recover(stale_after=timedelta(hours=1))
    job, _ = await job_row(factory, job_id)
    assert job.status == "running"


async def test_queued_ahead_counts_only_older_queued_jobs(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    store = JobStore(factory)
    ids = []
    for _ in range(3):  # distinct created_at values, oldest first
        ids += await add_jobs(factory, 1, status="queued")
        await asyncio.sleep(0.002)
    mine = ids[-1]
    before = await store.queued_ahead(mine)
    first_ahead = await store.queued_ahead(ids[0])
    async with factory() as session:
        job = await session.scalar(select(Job).where(Job.id == ids[0]))
        assert job is not None
        job.status = "running"
        await session.commit()
    # Other tests' queued jobs may exist; only the change made here is asserted exactly.
    assert await store.queued_ahead(mine) == before - 1
    assert await store.queued_ahead(ids[1]) == first_ahead
    assert await store.queued_ahead("no-such-job") == 0


async def test_the_runner_marks_its_job_done_with_the_result(
    factory: async_sessionmaker[AsyncSession], tmp_path
) -> None:
    """LocalQueue relies on the runner (Pipeline.run_job) to end the job in its own commit."""
    from backend.analysis.pipeline import Pipeline
    from backend.jobs.local import LocalQueue
    from backend.storage.local import LocalStorage
    from tests.conftest import fixture_images

    storage = LocalStorage(tmp_path)
    storage.put("uploads/x.png", fixture_images()[0].read_bytes())
    store = JobStore(factory)
    pipeline = Pipeline([], code_version="test", sessionmaker=factory, storage=storage)
    queue = LocalQueue(store, pipeline.run_job, concurrency=1, poll_interval_s=0.05)
    (job_id,) = await add_jobs(factory, 1, status="queued")
    await queue.start()
    try:
        for _ in range(200):
            job, analysis = await job_row(factory, job_id)
            if job.status != "queued" and job.status != "running":
                break
            await asyncio.sleep(0.05)
    finally:
        await queue.stop()
    assert job.status == "done" and job.finished_at is not None
    # No stages: the input stage never ran, so the analysis is FAILED — but stored, not lost.
    assert analysis.status == "failed" and analysis.result is not None
