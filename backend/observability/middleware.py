"""Request latency by route template (never the raw path: ids would explode the label set).

The timing itself is done by the API's one request middleware (`backend.api.middleware`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from backend.observability.metrics import Metrics

UNMATCHED = "<unmatched>"


@dataclass(frozen=True)
class RouteLabel:
    """What a layer that answers before routing puts in `scope["route"]`: the template it serves."""

    path: str


def route_template(scope: Scope) -> str:
    """The matched route's path template, or `<unmatched>`."""
    # The router writes the matched route into the scope it passes down; Starlette copies
    # that update back into this (outer) scope dict.
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED


def install_metrics(app: Any) -> Metrics:
    """Give `app` its own metrics registry (idempotent); the request middleware feeds it."""
    existing = getattr(app.state, "metrics", None)
    if isinstance(existing, Metrics):
        return existing
    metrics = Metrics()
    app.state.metrics = metrics
    return metrics
