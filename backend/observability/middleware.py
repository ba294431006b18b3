"""Request latency by route template (never the raw path: ids would explode the label set)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.observability.metrics import Metrics

UNMATCHED = "<unmatched>"


class MetricsMiddleware:
    """Pure ASGI: times each HTTP request and labels it with the matched route's template."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        metrics = self.metrics

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.http_in_flight.dec()
            metrics.observe_request(
                _route_template(scope),
                str(scope.get("method", "")),
                status,
                time.perf_counter() - started,
            )


def _route_template(scope: Scope) -> str:
    # The router writes the matched route into the scope it passes down; Starlette copies
    # that update back into this (outer) scope dict.
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED


def install_metrics(app: Any) -> Metrics:
    """Give `app` its own registry and the latency middleware (idempotent)."""
    existing = getattr(app.state, "metrics", None)
    if isinstance(existing, Metrics):
        return existing
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics
