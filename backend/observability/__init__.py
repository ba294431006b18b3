"""Prometheus metrics: one registry per app or worker, and request latency by route."""

from backend.observability.metrics import Metrics
from backend.observability.middleware import MetricsMiddleware, install_metrics

__all__ = ["Metrics", "MetricsMiddleware", "install_metrics"]
