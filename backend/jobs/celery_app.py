"""The Celery application (Redis broker and result store), built from settings, never at import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from celery import Celery

from backend.config import ConfigError, Settings

RUN_JOB_TASK = "medsight.run_job"


def _option(settings: Settings, name: str, default: float) -> float:
    """A setting, or its environment variable until Settings declares it, or the default."""
    value: Any = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name.upper())
    return float(value) if value not in (None, "") else default


@dataclass(frozen=True)
class CeleryOptions:
    """Queue timings. Invariant: heartbeat_s < stale_after_s; a redelivery is harmless."""

    broker_url: str
    queue: str = "medsight"
    # Redis re-delivers an unacknowledged message this long after delivery (worker died).
    visibility_timeout_s: float = 300.0
    # How often the API looks for lost or abandoned jobs, and how long a queued job may sit
    # before its message is sent again (claims are atomic, so a duplicate costs one query).
    sweep_interval_s: float = 15.0
    resend_after_s: float = 30.0
    # A running job whose heartbeat is older than this belongs to a dead worker.
    stale_after_s: float = 60.0
    heartbeat_s: float = 10.0
    # An attempt running longer than this is abandoned and counted as failed (a hung model
    # call would otherwise hold the worker forever while its heartbeat says it is alive).
    job_timeout_s: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryOptions:
        if not settings.redis_url:
            raise ConfigError("QUEUE_BACKEND=celery needs REDIS_URL (e.g. redis://redis:6379/0).")
        queue = getattr(settings, "celery_queue", None) or os.environ.get("CELERY_QUEUE")
        opts = cls(
            broker_url=settings.redis_url,
            queue=queue or "medsight",
            visibility_timeout_s=_option(settings, "celery_visibility_timeout_s", 300.0),
            sweep_interval_s=_option(settings, "job_sweep_interval_s", 15.0),
            resend_after_s=_option(settings, "job_resend_after_s", 30.0),
            stale_after_s=_option(settings, "job_stale_after_s", 60.0),
            heartbeat_s=_option(settings, "job_heartbeat_s", 10.0),
            job_timeout_s=_option(settings, "job_timeout_s", 600.0),
        )
        if opts.heartbeat_s >= opts.stale_after_s:
            raise ConfigError("JOB_HEARTBEAT_S must be smaller than JOB_STALE_AFTER_S.")
        return opts


def create_celery_app(opts: CeleryOptions) -> Celery:
    """A Celery app with late acks, prefetch 1 and a bounded visibility timeout."""
    app = Celery("medsight", broker=opts.broker_url, backend=opts.broker_url, set_as_current=False)
    visibility = max(1, int(opts.visibility_timeout_s))
    app.conf.update(
        task_default_queue=opts.queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A message is acknowledged only after the job row says done/failed/retrying, and a
        # killed child process puts it back: together with the atomic claim nothing is lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # Kombu scans for expired unacked messages every interval x throttle seconds;
            # the default (10 x 10) would leave a dead worker's job waiting 100 s extra.
            "unacked_restore_interval": max(1, min(10, visibility // 2)),
            "unacked_restore_throttle": 1,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        result_backend_transport_options={"visibility_timeout": visibility},
        redis_socket_timeout=10,
        redis_socket_connect_timeout=5,
        # A publish must not hang a request: fail after a few seconds; the sweep re-sends.
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app
