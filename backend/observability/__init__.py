"""Prometheus metrics: one registry per app, a request-latency middleware, pipeline timings."""

from backend.observability.metrics import Metrics, instrument_pipeline
from backend.observability.middleware import MetricsMiddleware, install_metrics

__all__ = ["Metrics", "MetricsMiddleware", "install_metrics", "instrument_pipeline"]
