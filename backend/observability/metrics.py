"""The metric families MedSight exports, in a per-app `CollectorRegistry`.

A per-app registry (not prometheus_client's global one) lets tests build many apps in one
process, and lets a Celery worker export its own pipeline timings beside the API's.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

logger = logging.getLogger(__name__)

# Result timing keys → the stage label they are exported under.
STAGE_TIMINGS: dict[str, str] = {
    "preprocess_ms": "input",
    "vision_ms": "vision",
    "nlp_ms": "nlp",
    "fusion_ms": "fusion",
    "report_ms": "report",
}
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
MODEL_STATES = ("registered", "loading", "ready", "failed")
DRIFT_STATUSES = ("ok", "warning", "drift")

_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every MedSight metric family, registered in one private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_latency = Histogram(
            "medsight_http_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self._http_children: dict[tuple[str, str, int], Any] = {}
        self.http_in_flight = Gauge(
            "medsight_http_requests_in_flight", "HTTP requests being served.", registry=r
        )
        self.queue_jobs = Gauge(
            "medsight_queue_jobs",
            "Analysis job rows by status (queue depth).",
            ["status"],
            registry=r,
        )
        self.broker_messages = Gauge(
            "medsight_broker_queue_messages",
            "Messages waiting in the Celery queue on Redis (QUEUE_BACKEND=celery only).",
            registry=r,
        )
        self.stage_duration = Histogram(
            "medsight_stage_duration_seconds",
            "Pipeline stage duration, per stage that ran (stage=total: the whole pipeline).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.analyses = Counter(
            "medsight_analyses",
            "Analyses finished by this process, by overall status.",
            ["overall_status"],
            registry=r,
        )
        self.model_state = Gauge(
            "medsight_model_state",
            "1 for each model's current load state, 0 for the others.",
            ["model", "state"],
            registry=r,
        )
        self.model_load_seconds = Gauge(
            "medsight_model_load_seconds", "How long the model took to load.", ["model"], registry=r
        )
        self.models_ready = Gauge(
            "medsight_models_ready", "1 when every required model is loaded.", registry=r
        )
        self.device_memory = Gauge(
            "medsight_device_memory_bytes",
            "Memory in use: process RSS on the CPU, allocated/reserved on each CUDA device.",
            ["device", "kind"],
            registry=r,
        )
        self.gpu_budget_used = Gauge(
            "medsight_gpu_budget_used_mb", "GPU memory reserved by the model registry.", registry=r
        )
        self.drift_statistic = Gauge(
            "medsight_drift_statistic",
            "Drift of the recent analyses from the reference population (sqrt(n) x KS distance; "
            "NaN below DRIFT_MIN_N).",
            registry=r,
        )
        self.drift_status = Gauge(
            "medsight_drift_status",
            "1 for the current drift status (ok, warning, drift), 0 for the others.",
            ["status"],
            registry=r,
        )
        self.drift_window = Gauge(
            "medsight_drift_window_size", "Analyses in the drift window (n).", registry=r
        )
        self.drift_outside_population = Gauge(
            "medsight_drift_outside_population_ratio",
            "Share of the window's images outside the reference population.",
            registry=r,
        )

    # --- events -------------------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._http_children.get(key)
        if child is None:  # a label lookup builds and hashes strings: once per series
            child = self.http_latency.labels(route=route, method=method, status=str(status))
            self._http_children[key] = child
        child.observe(seconds)

    def observe_timings(
        self,
        timings: Mapping[str, Any],
        stages: Mapping[str, Any] | None = None,
        overall_status: str | None = None,
    ) -> None:
        """Record stage durations (milliseconds in, seconds out); skipped stages are left out."""
        for key, stage in STAGE_TIMINGS.items():
            value = timings.get(key)
            if value is None:
                continue
            status = (stages or {}).get(stage)
            if stages is not None and status not in {"ok", "failed", "withheld"}:
                continue  # skipped: its 0 ms would drag the histogram down
            self.stage_duration.labels(stage=stage).observe(float(value) / 1000.0)
        total = timings.get("total_ms")
        if total is not None:
            self.stage_duration.labels(stage="total").observe(float(total) / 1000.0)
        if overall_status:
            self.analyses.labels(overall_status=str(overall_status)).inc()

    # --- snapshots taken at scrape time -----------------------------------------------------
    def set_queue_depth(self, depth: Mapping[str, int]) -> None:
        for status in (*JOB_STATUSES, *depth):
            self.queue_jobs.labels(status=status).set(float(depth.get(status, 0)))

    def set_models(self, state: Mapping[str, Any], *, ready: bool | None = None) -> None:
        """From `ModelRegistry.state()`."""
        for name, info in (state.get("models") or {}).items():
            current = str(info.get("state"))
            for value in (*MODEL_STATES, current):
                self.model_state.labels(model=name, state=value).set(
                    1.0 if value == current else 0.0
                )
            if info.get("load_ms") is not None:
                self.model_load_seconds.labels(model=name).set(float(info["load_ms"]) / 1000.0)
        self.gpu_budget_used.set(float(state.get("gpu_used_mb") or 0.0))
        if ready is not None:
            self.models_ready.set(1.0 if ready else 0.0)

    def set_device_memory(self) -> None:
        try:
            import psutil

            self.device_memory.labels(device="cpu", kind="rss").set(
                float(psutil.Process().memory_info().rss)
            )
        except Exception:  # noqa: BLE001 - a metric must never break a scrape
            logger.debug("rss unavailable", exc_info=True)
        torch = sys.modules.get("torch")  # never import torch just to be scraped
        if torch is None:
            return
        try:
            if not torch.cuda.is_available():
                return
            for index in range(torch.cuda.device_count()):
                device = f"cuda:{index}"
                self.device_memory.labels(device=device, kind="allocated").set(
                    float(torch.cuda.memory_allocated(index))
                )
                self.device_memory.labels(device=device, kind="reserved").set(
                    float(torch.cuda.memory_reserved(index))
                )
        except Exception:  # noqa: BLE001
            logger.debug("cuda memory unavailable", exc_info=True)

    def set_drift(
        self, status: str, statistic: float | None, n: int, outside_ratio: float | None
    ) -> None:
        """Export the drift monitor's latest check (see backend/monitoring)."""
        for name in DRIFT_STATUSES:
            self.drift_status.labels(status=name).set(1.0 if name == status else 0.0)
        self.drift_statistic.set(float("nan") if statistic is None else statistic)
        self.drift_window.set(n)
        self.drift_outside_population.set(float("nan") if outside_ratio is None else outside_ratio)

    def render(self) -> bytes:
        return generate_latest(self.registry)
