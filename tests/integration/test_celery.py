"""QUEUE_BACKEND=celery with real Redis and real worker processes.

Workers run as `python -m backend.analysis.worker`.

Needs REDIS_URL (CI: redis://127.0.0.1:6379/0); the tests use database 14 of that server and
flush only that one. Analyses go in through the API; workers are separate process groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from backend.accounts import anonymous
from backend.accounts.caller import Owner
from backend.analysis import service
from backend.analysis.worker import WorkerRuntime
from backend.config import Settings
from backend.db.base import new_id, utcnow
from backend.db.models import Analysis, Job
from backend.db.session import create_engine, create_sessionmaker, transaction
from backend.jobs.celery_app import CeleryOptions
from backend.jobs.celery_queue import CeleryQueue
from backend.jobs.store import JobStore, mark_job_done
from backend.main import create_app
from backend.storage.local import LocalStorage
from tests.conftest import REPO, AppParts, fixture_images, make_settings, parts
from tests.integration.test_analysis_events import parse_sse

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (needs a real Redis)"
)

TEST_REDIS_DB = 14
FINAL = {"complete", "partial", "failed"}
# Short timings so a dead worker's job comes back within seconds, not minutes.
QUEUE_ENV = {
    "CELERY_QUEUE": "medsight-test",
    "CELERY_VISIBILITY_TIMEOUT_S": "4",
    "JOB_HEARTBEAT_S": "1",
    "JOB_STALE_AFTER_S": "8",
    "JOB_RESEND_AFTER_S": "1",
    # The API's periodic sweep stays out of the way: tests call it, or test redelivery alone.
    "JOB_SWEEP_INTERVAL_S": "3600",
}

ANON_ID = "celery-test-client"


def redis_url(db: int = TEST_REDIS_DB) -> str:
    """REDIS_URL's server, database `db`."""
    return urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{db}").geturl()


def flush_test_db() -> None:
    import redis

    client = redis.Redis.from_url(redis_url(), socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


@dataclass
class WorkerProc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.text()[-3000:]}")
            if " ready." in self.text():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready:\n{self.text()[-3000:]}")

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def kill9(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill9()


@dataclass
class Cluster:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    env: dict[str, str]
    data_dir: Path
    workers: list[WorkerProc] = field(default_factory=list)

    @property
    def state(self) -> AppParts:
        return parts(self.app)

    def start_worker(self, name: str) -> WorkerProc:
        log = self.data_dir / f"worker-{name}.log"
        handle = open(log, "wb")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.analysis.worker", "--hostname", f"{name}@test"],
            cwd=REPO,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes all of it
        )
        handle.close()
        worker = WorkerProc(name, proc, log)
        self.workers.append(worker)
        return worker

    async def submit(self, image: Path, symptoms: str | None = None) -> dict[str, Any]:
        data = {"symptoms": symptoms} if symptoms else {}
        response = await self.client.post(
            "/api/v1/analyze", files={"image": (image.name, image.read_bytes())}, data=data
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def status(self, task_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/analyze/status/{task_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_final(self, task_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(final) < len(task_ids):
            for task_id in task_ids:
                if task_id not in final:
                    body = await self.status(task_id)
                    if body["status"] in FINAL:
                        final[task_id] = body
            await asyncio.sleep(0.3)
        missing = [t for t in task_ids if t not in final]
        logs = "\n".join(f"--- {w.name}\n{w.text()[-2000:]}" for w in self.workers)
        assert not missing, f"not finished in {timeout}s: {missing}\n{logs}"
        return final

    async def job(self, task_id: str) -> Job:
        async with self.state.sessionmaker() as session:
            job = await session.scalar(select(Job).where(Job.id == task_id))
        assert job is not None
        return job


@pytest.fixture(scope="module")
def queue_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in QUEUE_ENV.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
async def cluster(
    queue_env: None, tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[Cluster]:
    flush_test_db()
    data_dir = tmp_path_factory.mktemp("celery")
    settings = make_settings(
        data_dir,
        database_url,
        queue_backend="celery",
        redis_url=redis_url(),
        job_max_attempts=2,
        vision_batch_max=1,
        rate_limit_analyze="100000/hour",  # the limiter's store is shared across tests
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDSIGHT_", "PYTEST"))}
    env.update(QUEUE_ENV)
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "QUEUE_BACKEND": "celery",
            "REDIS_URL": redis_url(),
            "JOB_MAX_ATTEMPTS": "2",
            "LOG_LEVEL": "INFO",
            # Lazy loading keeps worker start-up short; the first job pays for the vision model.
            "PRELOAD_MODELS": "false",
            "INFERENCE_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "VISION_BATCH_MAX": "1",
            "CORPUS_AUTOBUILD": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        # One anonymous client throughout: each anonymous client is its own tenant.
        anon = {anonymous.HEADER: anonymous.token_for(settings, ANON_ID)}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", timeout=30, headers=anon
        ) as c:
            cluster = Cluster(app=app, client=c, settings=settings, env=env, data_dir=data_dir)
            try:
                yield cluster
            finally:
                for worker in cluster.workers:
                    worker.terminate()
                for worker in cluster.workers:
                    worker.stop()
    flush_test_db()


@needs_redis
@pytest.mark.redis
@pytest.mark.slow
async def test_worker_processes_complete_analyses_submitted_through_the_api(
    cluster: Cluster,
) -> None:
    first, second = cluster.start_worker("w1"), cluster.start_worker("w2")
    images = fixture_images()
    accepted = [await cluster.submit(images[i % len(images)]) for i in range(4)]
    # The API process follows one of them while a worker process runs it.
    following = asyncio.create_task(
        cluster.client.get(
            f"/api/v1/analyze/events/{accepted[0]['task_id']}", params={"wait": 90}, timeout=120
        )
    )
    await asyncio.to_thread(first.wait_ready)
    await asyncio.to_thread(second.wait_ready)
    final = await cluster.wait_final([a["task_id"] for a in accepted], timeout=90)
    events = parse_sse((await following).text)
    # No stage events cross processes: the stream says so, then follows the job row to the end.
    assert events[0][0] == "status" and events[0][1]["stage_events"] is False
    assert "QUEUE_BACKEND=celery" in events[0][1]["note"]
    assert "stage" not in [name for name, _ in events]
    assert events[-1][0] == "final"
    assert events[-1][1]["status"] == final[accepted[0]["task_id"]]["status"]
    for item in accepted:
        body = final[item["task_id"]]
        result = await cluster.client.get(f"/api/v1/analyze/result/{item['session_id']}")
        assert result.status_code == 200, result.text
        payload = result.json()
        # The worker ran the pipeline on the uploaded image and stored what it found.
        assert payload["session_id"] == item["session_id"]
        assert payload["stages"]["input"] == "ok", payload["warnings"]
        assert payload["image"]["width"] > 0
        assert payload["overall_status"].lower() == body["status"]
        if body["status"] == "failed":
            assert body["error"], body  # a failure always says why
    claimants = {(await cluster.job(a["task_id"])).claimed_by or "" for a in accepted}
    assert all(c.split(":")[1] in {str(first.pid), str(second.pid)} for c in claimants), claimants
    state = await cluster.state.queue.state()
    assert state["backend"] == "celery" and state["alive"] == 1
    metrics = (await cluster.client.get("/metrics")).text
    assert 'medsight_queue_jobs{status="done"}' in metrics
    assert "medsight_broker_queue_messages 0.0" in metrics  # all delivered
    ready = await cluster.client.get("/api/v1/health/ready")
    assert ready.json().get("checks", ready.json()).get("queue", {}).get("backend") == "celery"


@needs_redis
@pytest.mark.redis
@pytest.mark.slow
async def test_lost_publishes_are_resent_and_a_failing_job_ends_failed_with_reason(
    cluster: Cluster,
) -> None:
    """An API crash between commit and publish loses nothing: the sweep sends the row again."""
    images = fixture_images()
    owner = Owner.anonymous(ANON_ID)
    state = cluster.state
    submitted = []
    async with state.sessionmaker() as session:
        for image in images[:2]:
            submitted.append(
                await service.submit_analysis(
                    session,
                    storage=state.storage,
                    settings=cluster.settings,
                    owner=owner,
                    data=image.read_bytes(),
                    symptoms=None,
                    patient_ref=None,
                    idempotency_key=None,
                    limiter=state.runtime.io_limiter,
                )
            )
    # The second one's upload vanished from storage: every attempt fails, visibly.
    async with state.sessionmaker() as session:
        key = await session.scalar(
            select(Analysis.image_key).where(Analysis.id == submitted[1].analysis_id)
        )
    assert key is not None
    state.storage.delete(key)
    await asyncio.sleep(1.2)  # JOB_RESEND_AFTER_S
    assert await state.queue.recover_stale() >= 2  # type: ignore[attr-defined]
    final = await cluster.wait_final([s.job_id for s in submitted], timeout=60)
    assert final[submitted[0].job_id]["status"] in {"complete", "partial", "failed"}
    lost = final[submitted[1].job_id]
    assert lost["status"] == "failed"
    assert lost["attempts"] == 2  # retried once (re-sent with backoff), then failed for good
    # Said to the client without the storage error's text (it names the object's key).
    assert lost["error"] and "uploads/" not in lost["error"]


@needs_redis
@pytest.mark.redis
@pytest.mark.slow
async def test_kill_9_of_a_worker_mid_job_is_redelivered_and_completed_by_another(
    cluster: Cluster,
) -> None:
    """kill -9 of a worker's whole process group: Redis redelivers, another worker takes over."""
    victim, *others = [w for w in cluster.workers if w.proc.poll() is None]
    for worker in others:
        worker.stop()  # only the victim consumes until it dies
    images = fixture_images()
    victim.signal(signal.SIGSTOP)  # a backlog builds up, so the victim works back to back
    accepted = [await cluster.submit(images[i % len(images)]) for i in range(6)]
    ids = [a["task_id"] for a in accepted]

    async def running_on_victim() -> list[str]:
        async with cluster.state.sessionmaker() as session:
            rows = await session.scalars(
                select(Job.id).where(
                    Job.id.in_(ids),
                    Job.status == "running",
                    Job.claimed_by.contains(f":{victim.pid}:"),
                )
            )
            return list(rows.all())

    # Freeze the victim, look: if the database shows it holding a job, it is provably mid-job
    # (a stopped process finishes nothing), so kill -9 it there; otherwise let it run a moment.
    interrupted: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not interrupted:
        victim.signal(signal.SIGSTOP)
        if await running_on_victim():
            victim.kill9()
            interrupted = await running_on_victim()
            break
        victim.signal(signal.SIGCONT)
        await asyncio.sleep(0.03)
    victim.kill9()
    assert interrupted, f"the victim never held a job:\n{victim.text()[-3000:]}"
    rescuer = cluster.start_worker("rescuer")
    final = await cluster.wait_final(ids, timeout=90)
    assert all(body["status"] in FINAL for body in final.values())
    for task_id in interrupted:
        job = await cluster.job(task_id)
        for _ in range(100):  # the job row is closed just after the analysis row
            if job.status in {"done", "failed"}:
                break
            await asyncio.sleep(0.1)
            job = await cluster.job(task_id)
        assert job.status in {"done", "failed"}
        assert job.attempts == 2, (job.attempts, job.last_error)
        assert (job.claimed_by or "").split(":")[1] == str(rescuer.pid)
        assert final[task_id]["status"] in {"complete", "partial", "failed"}
        if final[task_id]["status"] == "failed":
            assert final[task_id]["error"]


# --- the claim rules a Celery message relies on (database only, no Redis) ---------------------
STALE = timedelta(seconds=60)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[JobStore]:
    engine = create_engine(database_url)
    store = JobStore(create_sessionmaker(engine))
    yield store
    # Leave no half-claimed rows for other tests' queues to recover.
    owned = select(Analysis.id).where(Analysis.owner_key.like("celery-claims-%"))
    async with store.factory() as session:
        await session.execute(
            update(Job)
            .where(Job.analysis_id.in_(owned), Job.status.in_(("queued", "running")))
            .values(status="cancelled")
        )
        await session.commit()
    await engine.dispose()


async def add_job(store: JobStore, **job: Any) -> str:
    async with store.factory() as session:
        analysis = Analysis(
            id=new_id(),
            owner_key=f"celery-claims-{new_id()}",
            image_key="uploads/x.png",
            image_sha256="0" * 64,
            image_format="png",
            image_width=256,
            image_height=256,
            status="running" if job.get("status") == "running" else "queued",
        )
        row = Job(id=new_id(), analysis_id=analysis.id, available_at=utcnow(), **job)
        session.add_all([analysis, row])
        await session.commit()
        return row.id


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_duplicate_messages_for_one_job_run_it_once(store: JobStore) -> None:
    job_id = await add_job(store)
    outcomes = await asyncio.gather(
        *(store.claim_specific(job_id, f"w{i}", takeover=True, stale_after=STALE) for i in range(4))
    )
    assert sorted(o.outcome for o in outcomes) == ["claimed"] + ["running_elsewhere"] * 3
    async with transaction(store.factory) as session:  # what the runner does with its result
        await mark_job_done(session, job_id)
    done = await store.claim_specific(job_id, "later", takeover=True, stale_after=STALE)
    assert done.outcome == "finished" and done.job is None


async def test_takeover_needs_a_dead_or_silent_claimant(store: JobStore) -> None:
    host = socket.gethostname()
    alive = await add_job(
        store, status="running", attempts=1, claimed_by=f"{host}:1:celery", heartbeat_at=utcnow()
    )
    outcome = await store.claim_specific(alive, "me", takeover=True, stale_after=STALE)
    assert outcome.outcome == "running_elsewhere"  # pid 1 lives and the heartbeat is fresh

    dead = await add_job(
        store,
        status="running",
        attempts=1,
        claimed_by=f"{host}:{dead_pid()}:celery",
        heartbeat_at=utcnow(),
    )
    assert (await store.claim_specific(dead, "me", takeover=False, stale_after=STALE)).job is None
    taken = await store.claim_specific(dead, "me", takeover=True, stale_after=STALE)
    assert taken.outcome == "taken_over" and taken.job is not None and taken.job.attempts == 2

    silent = await add_job(
        store,
        status="running",
        attempts=1,
        claimed_by="another-host:123:celery",
        heartbeat_at=utcnow() - timedelta(minutes=5),
    )
    # Two workers get the redelivered message at once: one takes over, the other stands back.
    both = await asyncio.gather(
        store.claim_specific(silent, "a", takeover=True, stale_after=STALE),
        store.claim_specific(silent, "b", takeover=True, stale_after=STALE),
    )
    assert sorted(o.outcome for o in both) == ["running_elsewhere", "taken_over"]
    assert not await store.heartbeat(silent, "another-host:123:celery")  # the old owner lost it


async def test_takeover_after_the_last_attempt_fails_the_job_with_a_reason(
    store: JobStore,
) -> None:
    job_id = await add_job(
        store,
        status="running",
        attempts=3,
        max_attempts=3,
        claimed_by=f"{socket.gethostname()}:{dead_pid()}:celery",
        heartbeat_at=utcnow(),
    )
    outcome = await store.claim_specific(job_id, "me", takeover=True, stale_after=STALE)
    assert outcome.outcome == "failed_for_good"
    async with store.factory() as session:
        job = await session.scalar(select(Job).where(Job.id == job_id))
        assert job is not None
        analysis = await session.scalar(select(Analysis).where(Analysis.id == job.analysis_id))
    assert job.status == "failed" and analysis is not None and analysis.status == "failed"
    assert "stopped during attempt 3" in (job.last_error or "")
    assert analysis.error and socket.gethostname() not in analysis.error


async def test_worker_runtime_runs_jobs_on_its_own_loop_and_fails_hung_attempts(
    tmp_path: Path, database_url: str
) -> None:
    """The per-process runtime (no broker needed): one job runs, one over-long attempt fails."""
    settings = make_settings(tmp_path, database_url, job_max_attempts=1)
    engine = create_engine(database_url)
    factory = create_sessionmaker(engine)
    storage = LocalStorage(tmp_path / "uploads")
    image = fixture_images()[0].read_bytes()
    submitted = []
    async with factory() as session:
        for _ in range(2):
            submitted.append(
                await service.submit_analysis(
                    session,
                    storage=storage,
                    settings=settings,
                    owner=Owner.anonymous(ANON_ID),
                    data=image,
                    symptoms=None,
                    patient_ref=None,
                    idempotency_key=None,
                    limiter=anyio.CapacityLimiter(1),
                )
            )
    fast = WorkerRuntime(settings, CeleryOptions(broker_url="redis://unused"))
    hung = WorkerRuntime(settings, CeleryOptions(broker_url="redis://unused", job_timeout_s=0.001))
    try:
        done = await asyncio.to_thread(fast.call, fast.process(submitted[0].job_id), 120)
        again = await asyncio.to_thread(fast.call, fast.process(submitted[0].job_id), 120)
        timed_out = await asyncio.to_thread(hung.call, hung.process(submitted[1].job_id), 120)
        finished = await asyncio.to_thread(fast.call, fast.state.jobs.depth(), 30)
        # The runtime's engine belongs to its own loop: read back through this test's engine.
        async with factory() as session:
            first = await session.scalar(
                select(Analysis).where(Analysis.id == submitted[0].analysis_id)
            )
            second = await session.scalar(
                select(Analysis).where(Analysis.id == submitted[1].analysis_id)
            )
    finally:
        await asyncio.to_thread(fast.close)
        await asyncio.to_thread(hung.close)
        await engine.dispose()
    assert done == ("done", None) and again == ("finished", None)
    assert finished.get("done", 0) >= 1
    assert first is not None and first.status in {"complete", "partial", "failed"}
    assert first.result is not None and first.result["stages"]["input"] == "ok"
    assert timed_out == ("failed", None)
    assert second is not None and second.status == "failed"
    assert "took longer than" in (second.error or "")


async def test_an_unreachable_broker_never_fails_an_accepted_upload(
    tmp_path: Path, database_url: str
) -> None:
    """The row is committed first; a failed publish is logged and left for the sweep."""
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(
        tmp_path, database_url, queue_backend="celery", redis_url=f"redis://127.0.0.1:{port}/0"
    )
    engine = create_engine(database_url)
    queue = CeleryQueue(settings, JobStore(create_sessionmaker(engine)))
    try:
        job_id = await add_job(queue.store)
        started = time.monotonic()
        await queue.enqueue(job_id)  # does not raise
        assert time.monotonic() - started < 10
        state = await queue.state()
        assert state["alive"] == 0 and "broker unreachable" in state["error"]
        assert state["publish_errors"] == 1
        async with queue.store.factory() as session:
            status = await session.scalar(select(Job.status).where(Job.id == job_id))
        assert status == "queued"  # still there for the sweep to send
        async with queue.store.factory() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(status="cancelled"))
            await session.commit()
    finally:
        await queue.stop()
        await engine.dispose()
