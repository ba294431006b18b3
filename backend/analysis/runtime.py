"""Everything an analysis needs at run time, built once per process by the API or a worker.

The API's lifespan and a Celery worker build the same `AnalysisRuntime` from settings, so a
worker never imports the web app.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass

import anyio

from backend import __version__
from backend.analysis.batching import MicroBatcher
from backend.analysis.pipeline import Pipeline
from backend.analysis.service import image_limits
from backend.analysis.stages import StageDeps, default_stages
from backend.analysis.threads import InferenceThreads
from backend.config import REPO_ROOT, Settings
from backend.db.session import Database
from backend.jobs.base import JobQueue
from backend.jobs.store import JobStore
from backend.ml.catalog import register_default_models
from backend.ml.registry import ModelRegistry
from backend.process import settle_heap
from backend.storage import ObjectStorage, build_storage

logger = logging.getLogger(__name__)


def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    if not (REPO_ROOT / ".git").exists():
        return __version__  # an installed wheel: no repository of its own to ask
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


@dataclass
class AnalysisRuntime:
    """Models, pipeline, queue and the limits that bound their threads."""

    settings: Settings
    database: Database
    storage: ObjectStorage
    registry: ModelRegistry
    threads: InferenceThreads
    batcher: MicroBatcher
    pipeline: Pipeline
    jobs: JobStore
    queue: JobQueue
    io_limiter: anyio.CapacityLimiter
    inference_limiter: anyio.CapacityLimiter

    async def aclose(self) -> None:
        """Stop the queue, release threads and models (the database is closed by its owner)."""
        await self.queue.stop()
        await self.batcher.close()
        self.threads.shutdown()
        await self.registry.unload_all()


def build_runtime(settings: Settings, database: Database) -> AnalysisRuntime:
    """Build storage, registry, pipeline and queue (the queue is not started)."""
    storage = build_storage(settings)
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
        registry=registry,
        batcher=batcher,
        threads=threads,
        limits=image_limits(settings),
        population_warning=settings.population_warning,
    )
    pipeline = Pipeline(
        default_stages(deps),
        code_version=code_version(),
        sessionmaker=database.sessionmaker,
        storage=storage,
    )
    jobs = JobStore(database.sessionmaker)
    queue: JobQueue
    if settings.queue_backend == "celery":
        from backend.jobs.celery_queue import CeleryQueue

        queue = CeleryQueue(settings, jobs)
    else:
        from backend.jobs.local import LocalQueue

        queue = LocalQueue(jobs, pipeline.run_job, concurrency=settings.worker_concurrency)
    return AnalysisRuntime(
        settings=settings,
        database=database,
        storage=storage,
        registry=registry,
        threads=threads,
        batcher=batcher,
        pipeline=pipeline,
        jobs=jobs,
        queue=queue,
        io_limiter=anyio.CapacityLimiter(8),
        inference_limiter=anyio.CapacityLimiter(max(1, settings.inference_threads)),
    )
