"""The ASGI application: `create_app()` plus a lifespan that builds and closes every part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.middleware.trustedhost import TrustedHostMiddleware

from backend import __version__
from backend.accounts import anonymous
from backend.accounts import router as accounts_router
from backend.accounts.anonymous import AnonymousCookieMiddleware
from backend.accounts.auth_cache import AuthCache
from backend.accounts.google import GoogleClients
from backend.accounts.mailer import LogMailer, Mailer
from backend.accounts.ratelimit import build_limiter, rate_limit_exceeded_handler
from backend.analysis import router as analysis_router
from backend.analysis.hot_reads import HotResultReads
from backend.analysis.pipeline import metrics_observer
from backend.analysis.result_cache import ResultCache
from backend.analysis.router import ANALYSIS_EVENTS
from backend.analysis.runtime import AnalysisRuntime, build_runtime
from backend.api import health, metrics
from backend.api.docs import install_docs
from backend.api.middleware import BodySizeLimitMiddleware, RequestMiddleware
from backend.api.openapi import install_openapi, operation_id
from backend.audit.service import configure_chain_key
from backend.audit.spool import AuditSpool
from backend.chat import router as chat_router
from backend.chat.router import CHAT_EVENTS
from backend.chat.service import ChatService
from backend.config import Settings, get_settings
from backend.contract import DISCLAIMER
from backend.db.migrate import upgrade_database
from backend.db.session import Database
from backend.dicomweb import router as dicomweb_router
from backend.dicomweb.delivery import PacsSender
from backend.dicomweb.schemas import StowResponse
from backend.logs import configure_logging
from backend.monitoring import router as monitoring_router
from backend.monitoring.service import DriftMonitor
from backend.observability import Metrics, install_metrics
from backend.process import configure_process, settle_heap, stop_watching_gc_pauses
from backend.reports import router as reports_router
from backend.reports.service import ReportService
from backend.users import router as users_router
from backend.viewer import router as viewer_router
from backend.voice import router as voice_router
from backend.web.problems import install_error_handlers
from backend.web.state import AppState

logger = logging.getLogger(__name__)


async def build_state(settings: Settings, metrics: Metrics) -> AppState:
    """Every long-lived part, in dependency order; `AppState.aclose()` undoes it in reverse."""
    state = AppState()
    state.add(settings)
    configure_chain_key(settings.audit_hmac_key)
    database = state.add(Database.connect(settings.database_url, echo=settings.database_echo))
    state.on_close("database", database.aclose)
    state.add(metrics)
    runtime = state.add(build_runtime(settings, database), close=None)
    state.on_close("analysis", runtime.aclose)
    runtime.pipeline.observe(metrics_observer(metrics))
    # Drift monitoring: each finished analysis leaves an observation (written after commit).
    monitor = state.add(DriftMonitor(settings, database.sessionmaker, metrics))
    runtime.pipeline.observe(monitor.observe)
    runtime.pipeline.on_finish(monitor.finished)
    state.on_close("drift monitor", monitor.flush)
    assert settings.audit_spool_dir is not None  # noqa: S101 - filled by the settings validator
    state.add(AuditSpool(settings.audit_spool_dir, database.sessionmaker))
    state.add(ResultCache(revalidate_s=settings.result_cache_revalidate_s))
    state.add(AuthCache(ttl_s=settings.auth_cache_ttl_s))
    state.add(build_limiter(settings), as_type=Limiter)
    state.add(GoogleClients())
    state.add(LogMailer(), as_type=Mailer)
    state.add(ChatService(settings, runtime.registry, database, limiter=runtime.inference_limiter))
    state.add(ReportService(runtime.storage, runtime.pipeline.code_version))
    if settings.pacs_dicomweb_url:
        # Results go back to the PACS: swept every few seconds, woken by each local result.
        sender = state.add(PacsSender(settings, database, runtime.storage), close=None)
        runtime.pipeline.on_finish(sender.wake)
        sender.start()
        state.on_close("pacs sender", sender.aclose)
    return state


async def _freeze_when_settled(tasks: list[asyncio.Task[None]]) -> None:
    """Once start-up loading is over, collect its garbage and freeze the rest (settle_heap)."""
    await asyncio.gather(*tasks, return_exceptions=True)
    settle_heap(collect=True)


def _start_scheduler(state: AppState) -> Any:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from backend.accounts.maintenance import purge_expired_auth_state
    from backend.analysis.maintenance import purge_expired, requeue_stale

    runtime = state.get(AnalysisRuntime)
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(requeue_stale, "interval", seconds=30, args=[runtime], id="requeue_stale")
    scheduler.add_job(
        purge_expired,
        "interval",
        hours=6,
        args=[runtime, state.get(ResultCache)],
        id="purge_expired",
    )
    scheduler.add_job(
        purge_expired_auth_state,
        "interval",
        hours=1,
        args=[state.get(Database).sessionmaker],
        id="purge_auth",
    )
    # A replica that died leaves its audit spool; any live process sharing the directory
    # chains it within a minute (and every process does at start-up).
    scheduler.add_job(
        state.get(AuditSpool).recover, "interval", seconds=60, id="audit_spool_recover"
    )
    # Drift: check the window, export the gauges, log a warning when the status changes.
    scheduler.add_job(
        state.get(DriftMonitor).check_now,
        "interval",
        seconds=state.get(Settings).drift_check_interval_s,
        id="drift_check",
    )
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
        state = await build_state(settings, app_metrics)
        app.state.medsight = state
        runtime = state.get(AnalysisRuntime)
        audit = state.get(AuditSpool)
        await audit.start()  # chains what a crashed process left spooled
        state.on_close("audit spool", audit.stop)
        await runtime.queue.start()
        scheduler = _start_scheduler(state)
        app.state.medsight_scheduler = scheduler
        background: list[asyncio.Task[None]] = []
        if settings.preload_models:
            background.append(asyncio.create_task(runtime.registry.preload()))
        if settings.corpus_autobuild:
            background.append(asyncio.create_task(state.get(ChatService).build_corpus_if_missing()))
        if settings.preload_models and settings.chat_local_tier:
            background.append(asyncio.create_task(state.get(ChatService).warm_local_tier()))
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
            await state.aclose()
            stop_watching_gc_pauses()
            logger.info("medsight stopped")

    docs = settings.docs_on
    app = FastAPI(
        title="MedSight API",
        version=__version__,
        description=(
            "Chest X-ray triage: anomaly scoring with heatmaps, clinical NLP, fusion, reports "
            f"and chat. {DISCLAIMER}"
        ),
        lifespan=lifespan,
        # Served by install_docs with local assets (no CDN).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        generate_unique_id_function=operation_id,
    )
    install_error_handlers(app)
    if docs:
        install_docs(app, settings.frame_ancestors or "'none'")
    app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded_handler)
    for router in (
        health.router,
        accounts_router.router,
        accounts_router.keys_router,
        users_router.router,
        voice_router.router,
        analysis_router.router,
        chat_router.router,
        reports_router.router,
        dicomweb_router.router,
        monitoring_router.router,
        metrics.router,
        viewer_router.router,
    ):
        app.include_router(router)
    install_openapi(
        app, extra_schemas=(*CHAT_EVENTS.values(), *ANALYSIS_EVENTS.values(), StowResponse)
    )
    # Order: the last added runs first. Request ids wrap everything, so even a 413 has one.
    # Innermost: signed-in reads of a cached result skip routing and dependency solving.
    app.add_middleware(HotResultReads)
    app.add_middleware(health.Liveness)
    app.add_middleware(AnonymousCookieMiddleware, secure=settings.is_production)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_body_bytes,
        # A STOW-RS request carries a whole study (several images); each is still capped.
        path_limits={"/api/v1/dicomweb/": settings.dicomweb_max_request_bytes},
    )
    if settings.allowed_origins or settings.allowed_origin_regex:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_origin_regex=settings.allowed_origin_regex,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "Idempotency-Key",
                anonymous.HEADER,
            ],
            expose_headers=["X-Request-ID", "Retry-After", "ETag", "Location", anonymous.HEADER],
        )
    if settings.trusted_hosts and settings.trusted_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    # Last, so it is outermost: every request (413s included) has an id, headers, a metric
    # and an access log line.
    app_metrics = install_metrics(app)
    app.add_middleware(
        RequestMiddleware, settings=settings, metrics=app_metrics, hsts=settings.is_production
    )
    return app


def _log_background(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background start-up task failed", exc_info=task.exception())
