"""`medsight worker`: a Celery worker that runs analyses with the same Pipeline as the API.

Each worker process owns one `WorkerRuntime`: a private thread runs ONE asyncio event loop for
the life of the process, and everything loop-bound (the async SQLAlchemy engine, the model
registry, the micro-batcher, the pipeline) is built on it once, by
`backend.analysis.runtime.build_runtime`, so models load once per process. Celery's execution
threads hand each job to that loop.

Delivery is at-least-once (late acks, prefetch 1, Redis visibility timeout); the job row makes
it exactly-once in effect: a message only runs a job it can claim atomically, or one whose
claimant is dead (same host, pid gone) or stale (no heartbeat for JOB_STALE_AFTER_S).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery, Task
from celery import signals as celery_signals

from backend.config import Settings, get_settings
from backend.jobs.celery_app import RUN_JOB_TASK, CeleryOptions, create_celery_app
from backend.jobs.store import worker_identity
from backend.logs import configure_logging
from backend.observability.metrics import Metrics
from backend.process import configure_process, settle_heap

if TYPE_CHECKING:
    from backend.analysis.runtime import AnalysisRuntime

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A claim or heartbeat that cannot reach the database is retried this many times, this far
# apart; after that the message is dropped and the API's sweep re-sends the still-queued job.
_INFRA_RETRIES = 5
_INFRA_RETRY_S = 5.0


class WorkerRuntime:
    """The per-process state of a worker: one event loop thread and the app state built on it."""

    def __init__(self, settings: Settings, opts: CeleryOptions) -> None:
        self.settings = settings
        self.opts = opts
        self.worker_id = worker_identity("celery")
        self.metrics = Metrics()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name="medsight-worker-loop", daemon=True
        )
        self._thread.start()
        self._closed = False
        self.state: AnalysisRuntime = self.call(self._build())

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the runtime's loop from any other thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _build(self) -> AnalysisRuntime:
        from backend.analysis.pipeline import metrics_observer
        from backend.analysis.runtime import build_runtime
        from backend.db.session import Database

        database = Database.connect(self.settings.database_url, echo=self.settings.database_echo)
        state = build_runtime(self.settings, database)
        state.pipeline.observe(metrics_observer(self.metrics))
        # Drift observations of the jobs this worker runs (the API checks the window).
        from backend.monitoring.service import DriftMonitor

        self.monitor = DriftMonitor(self.settings, database.sessionmaker)
        state.pipeline.observe(self.monitor.observe)
        state.pipeline.on_finish(self.monitor.finished)
        if self.settings.preload_models:
            await _preload(state)
        settle_heap(collect=True)  # jobs never wait on a full scan of the models' objects
        self._refresh_gauges(state)
        logger.info("worker runtime ready", extra={"worker": self.worker_id})
        return state

    def _refresh_gauges(self, state: AnalysisRuntime) -> None:
        self.metrics.set_models(state.registry.state(), ready=state.registry.ready())
        self.metrics.set_device_memory()

    async def process(self, job_id: str) -> tuple[str, float | None]:
        """Run one job if this message may; returns (outcome, re-send countdown or None)."""
        store = self.state.jobs
        claim = await store.claim_specific(
            job_id,
            self.worker_id,
            takeover=True,
            stale_after=timedelta(seconds=self.opts.stale_after_s),
        )
        job = claim.job
        if job is None:
            logger.info("message not run", extra={"job_id": job_id, "outcome": claim.outcome})
            return claim.outcome, None
        beat = asyncio.create_task(self._heartbeat(job.id), name=f"heartbeat-{job.id}")
        try:
            await asyncio.wait_for(
                self.state.pipeline.run_job(job.id, job.analysis_id), self.opts.job_timeout_s
            )  # marks the job done with its result
            return "done", None
        except TimeoutError:
            reason = f"the attempt took longer than {self.opts.job_timeout_s:.0f} s"
            logger.error("job attempt timed out", extra={"job_id": job.id})
            retried = await store.fail_attempt(job, reason)
            return ("retry", float(2**job.attempts)) if retried else ("failed", None)
        except Exception as exc:
            logger.exception("job attempt failed", extra={"job_id": job.id})
            retried = await store.fail_attempt(job, f"{type(exc).__name__}: {exc}")
            return ("retry", float(2**job.attempts)) if retried else ("failed", None)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self._refresh_gauges(self.state)

    async def _heartbeat(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.opts.heartbeat_s)
            try:
                owned = await self.state.jobs.heartbeat(job_id, self.worker_id)
            except Exception:  # noqa: BLE001 - the next beat may succeed
                logger.warning("heartbeat failed", exc_info=True, extra={"job_id": job_id})
                continue
            if not owned:
                logger.warning("job was taken over by another worker", extra={"job_id": job_id})
                return

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.call(self._shutdown(), timeout=30)
        except Exception:  # noqa: BLE001 - best effort at exit
            logger.warning("worker shutdown was not clean", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    async def _shutdown(self) -> None:
        await self.monitor.flush()
        await self.state.aclose()
        await self.state.database.aclose()


async def _preload(state: AnalysisRuntime) -> None:
    """Load the models the pipeline uses, each on its own: one failing does not stop the rest."""
    from backend.ml.catalog import NLP, VISION

    for name in (VISION, NLP):
        if not state.registry.is_registered(name):
            continue
        try:
            await state.registry.get(name)
        except Exception:  # noqa: BLE001 - jobs retry the load and say why it failed
            logger.warning("model preload failed; jobs will report it", extra={"model": name})


# --- process-wide runtime ----------------------------------------------------------------------
_lock = threading.Lock()
_runtime: WorkerRuntime | None = None
_config: tuple[Settings, CeleryOptions] | None = None


def runtime() -> WorkerRuntime:
    """This process's runtime, built on first use (after fork, in prefork children)."""
    global _runtime
    with _lock:
        if _runtime is None:
            if _config is None:
                settings = get_settings()
                configured = (settings, CeleryOptions.from_settings(settings))
            else:
                configured = _config
            _runtime = WorkerRuntime(*configured)
        return _runtime


def _close_runtime(**_: Any) -> None:
    global _runtime
    with _lock:
        current, _runtime = _runtime, None
    if current is not None:
        current.close()


def _init_runtime(**_: Any) -> None:
    runtime()


def run_job(task: Task[Any, Any], job_id: str) -> str:
    """The Celery task: claim the job row, run the pipeline, record the outcome."""
    rt = runtime()
    try:
        outcome, countdown = rt.call(rt.process(job_id))
    except Exception as exc:
        # The database or storage is unreachable: try this message again a little later.
        logger.warning("job could not start", exc_info=True, extra={"job_id": job_id})
        raise task.retry(exc=exc, countdown=_INFRA_RETRY_S, max_retries=_INFRA_RETRIES) from exc
    if countdown is not None:
        # The attempt failed and the row is queued again with a backoff: deliver it then.
        task.app.send_task(
            RUN_JOB_TASK,
            args=[job_id],
            queue=rt.opts.queue,
            countdown=countdown,
            ignore_result=True,
        )
    return outcome


def build_worker_app(settings: Settings, opts: CeleryOptions | None = None) -> Celery:
    """The Celery app with the job task registered."""
    global _config
    opts = opts or CeleryOptions.from_settings(settings)
    _config = (settings, opts)
    app = create_celery_app(opts)
    app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)(run_job)
    return app


def _serve_worker_metrics(port: int) -> None:
    from prometheus_client import start_http_server

    rt = runtime()
    start_http_server(port, addr="0.0.0.0", registry=rt.metrics.registry)  # noqa: S104
    logger.info("worker metrics served", extra={"port": port})


def run_worker(
    settings: Settings | None = None,
    *,
    concurrency: int = 1,
    pool: str = "solo",
    hostname: str | None = None,
    metrics_port: int | None = None,
) -> int:
    """Run a worker in this process until it is stopped; returns its exit code.

    `pool`: solo (one job at a time, the default: scale with processes), threads (several jobs
    share one loop and one copy of the models) or prefork (a runtime per child process).
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    configure_process(settings)
    opts = CeleryOptions.from_settings(settings)
    app = build_worker_app(settings, opts)
    if pool == "prefork":
        celery_signals.worker_process_init.connect(_init_runtime, weak=False)
        celery_signals.worker_process_shutdown.connect(_close_runtime, weak=False)
    else:
        runtime()  # load models before taking the first message
        if metrics_port:
            _serve_worker_metrics(metrics_port)
    worker = app.Worker(
        pool=pool,
        concurrency=max(1, concurrency),
        queues=[opts.queue],
        hostname=hostname or f"medsight@{socket.gethostname()}.{os.getpid()}",
        loglevel=settings.log_level.upper(),
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        optimization="fair",
    )
    logger.info(
        "medsight worker ready",
        extra={"pid": os.getpid(), "pool": pool, "concurrency": concurrency, "queue": opts.queue},
    )
    try:
        worker.start()
    finally:
        _close_runtime()
    return int(worker.exitcode or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a MedSight Celery worker.")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--pool", choices=("solo", "threads", "prefork"), default="solo")
    parser.add_argument("--hostname", default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args(argv)
    return run_worker(
        concurrency=args.concurrency,
        pool=args.pool,
        hostname=args.hostname,
        metrics_port=args.metrics_port,
    )


if __name__ == "__main__":
    # Run through the importable module so the task and the runtime live in one module object.
    from backend.analysis.worker import main as _main

    raise SystemExit(_main())
