"""The ASGI application: `create_app()` plus a lifespan that owns every stateful part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from backend import DISCLAIMER, __version__
from backend.analysis.batching import MicroBatcher
from backend.analysis.pipeline import Pipeline
from backend.analysis.result_cache import ResultCache
from backend.analysis.service import image_limits
from backend.analysis.stages import StageDeps, default_stages
from backend.analysis.threads import InferenceThreads
from backend.api.errors import install_error_handlers
from backend.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from backend.api.routers import analysis as analysis_router
from backend.api.routers import chat as chat_router
from backend.api.routers import health as health_router
from backend.api.routers import reports as reports_router
from backend.api.routers import transcribe as transcribe_router
from backend.auth.audit_spool import AuditSpool
from backend.auth.auth_cache import AuthCache
from backend.config import REPO_ROOT, Settings, get_settings
from backend.db.migrate import upgrade_database
from backend.db.session import create_engine, create_sessionmaker
from backend.jobs.local import LocalQueue
from backend.jobs.store import JobStore
from backend.logs import configure_logging
from backend.ml.catalog import register_default_models
from backend.ml.registry import ModelRegistry
from backend.observability import install_metrics, instrument_pipeline
from backend.process import configure_process, settle_heap, stop_watching_gc_pauses
from backend.state import AppState
from backend.storage import build_storage

logger = logging.getLogger(__name__)


def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    try:
        sha = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


async def build_state(settings: Settings) -> AppState:
    """Build engine, storage, registry, pipeline and queue (not started)."""
    engine = create_engine(settings.database_url, echo=settings.database_echo)
    factory = create_sessionmaker(engine)
    storage = build_storage(settings)
    inference_limiter = anyio.CapacityLimiter(max(1, settings.inference_threads))
    io_limiter = anyio.CapacityLimiter(8)
    # After each load: the model's objects leave the garbage collector's scans and the load's
    # temporary memory goes back to the system (see backend/process.py).
    registry = ModelRegistry(
        gpu_budget_mb=settings.gpu_vram_budget_mb, on_loaded=lambda _name, _model: settle_heap()
    )
    register_default_models(registry, settings)
    # The pipeline's compute runs below the event loop's CPU priority (analysis/threads.py).
    threads = InferenceThreads(settings.inference_threads, nice=settings.inference_nice)
    batcher = MicroBatcher(
        max_batch=settings.vision_batch_max,
        max_wait_ms=settings.vision_batch_wait_ms,
        threads=threads,
    )
    deps = StageDeps(
        registry=registry, batcher=batcher, threads=threads, limits=image_limits(settings)
    )
    pipeline = Pipeline(
        default_stages(deps), code_version=code_version(), sessionmaker=factory, storage=storage
    )
    jobs = JobStore(factory)
    assert settings.audit_spool_dir is not None  # noqa: S101 - filled by the settings validator
    queue: Any
    if settings.queue_backend == "celery":
        from backend.jobs.celery_queue import CeleryQueue

        queue = CeleryQueue(settings, jobs)
    else:
        queue = LocalQueue(jobs, pipeline.run_job, concurrency=settings.worker_concurrency)
    return AppState(
        settings=settings,
        engine=engine,
        sessionmaker=factory,
        storage=storage,
        registry=registry,
        pipeline=pipeline,
        queue=queue,
        jobs=jobs,
        audit=AuditSpool(settings.audit_spool_dir, factory),
        results=ResultCache(revalidate_s=settings.result_cache_revalidate_s),
        auth_cache=AuthCache(ttl_s=settings.auth_cache_ttl_s),
        extras={
            "batcher": batcher,
            "io_limiter": io_limiter,
            "inference_limiter": inference_limiter,
            "inference_threads": threads,
        },
    )


async def _freeze_when_settled(tasks: list[asyncio.Task[None]]) -> None:
    """Once start-up loading is over, collect its garbage and freeze the rest (settle_heap)."""
    await asyncio.gather(*tasks, return_exceptions=True)
    settle_heap(collect=True)


def _start_scheduler(state: AppState) -> Any:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from backend.analysis.maintenance import purge_expired, requeue_stale
    from backend.auth.maintenance import purge_expired_auth_state

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(requeue_stale, "interval", seconds=30, args=[state], id="requeue_stale")
    scheduler.add_job(purge_expired, "interval", hours=6, args=[state], id="purge_expired")
    scheduler.add_job(
        purge_expired_auth_state, "interval", hours=1, args=[state.sessionmaker], id="purge_auth"
    )
    if state.audit is not None:
        # A replica that died leaves its audit spool; any live process sharing the directory
        # chains it within a minute (and every process does at start-up).
        scheduler.add_job(state.audit.recover, "interval", seconds=60, id="audit_spool_recover")
    scheduler.start()
    return scheduler


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app; all state is created in the lifespan, none at import."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json_logs=settings.log_json)
        configure_process(settings)
        await anyio.to_thread.run_sync(upgrade_database, settings.database_url)
        state = await build_state(settings)
        app.state.medsight = state
        instrument_pipeline(state.pipeline, app.state.metrics)
        if state.audit is not None:
            await state.audit.start()  # chains what a crashed process left spooled
        await state.queue.start()
        scheduler = _start_scheduler(state)
        background: list[asyncio.Task[None]] = []
        if settings.preload_models:
            background.append(asyncio.create_task(state.registry.preload()))
        if settings.corpus_autobuild:
            from backend.chat.service import build_corpus_if_missing

            background.append(asyncio.create_task(build_corpus_if_missing(state)))
        for task in background:
            task.add_done_callback(_log_background)
        background.append(asyncio.create_task(_freeze_when_settled(list(background))))
        logger.info("medsight started", extra={"version": __version__, "env": settings.environment})
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            for task in background:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await state.queue.stop()
            if state.audit is not None:
                await state.audit.stop()
            await state.extras["batcher"].close()
            state.extras["inference_threads"].shutdown()
            await state.registry.unload_all()
            await state.engine.dispose()
            stop_watching_gc_pauses()
            logger.info("medsight stopped")

    docs = not settings.is_production
    app = FastAPI(
        title="MedSight API",
        version=__version__,
        description=(
            "Chest X-ray triage: anomaly scoring with heatmaps, clinical NLP, fusion, reports "
            f"and chat. {DISCLAIMER}"
        ),
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    from backend.auth import install_auth

    install_auth(app, settings)
    app.include_router(health_router.router)
    app.include_router(transcribe_router.router)
    app.include_router(analysis_router.router)
    app.include_router(chat_router.router)
    app.include_router(reports_router.router)
    # Order: the last added runs first. Request ids wrap everything, so even a 413 has one.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    if settings.allowed_origins or settings.allowed_origin_regex:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_origin_regex=settings.allowed_origin_regex,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Retry-After", "ETag"],
        )
    if settings.trusted_hosts and settings.trusted_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(RequestContextMiddleware, hsts=settings.is_production)
    # Last, so its middleware is outermost and sees every request (413s included).
    install_metrics(app)
    return app


def _log_background(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background start-up task failed", exc_info=task.exception())


def __getattr__(name: str) -> Any:
    # `backend.main:app` for uvicorn, built on first access rather than at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
