"""Prometheus metrics: one registry per app or worker, and request latency by route."""

from backend.observability.metrics import Metrics
from backend.observability.middleware import install_metrics, route_template

__all__ = ["Metrics", "install_metrics", "route_template"]
