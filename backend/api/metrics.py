"""`GET /metrics` in the Prometheus text format (the app's own registry, not the global one)."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from backend.analysis.dependencies import RuntimeDep
from backend.observability.metrics import Metrics
from backend.web.deps import SettingsDep
from backend.web.problems import problem_response

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, settings: SettingsDep, runtime: RuntimeDep) -> Response:
    """Queue depth, model state and device memory are read now; the rest accumulates."""
    token = settings.metrics_token or ""
    if not token and settings.is_production:
        # Queue depth, model state and request counts are nobody's business in production
        # unless the operator chose a token for the scraper.
        return problem_response(
            request,
            403,
            "/metrics is closed in production until METRICS_TOKEN is set.",
            code="metrics_disabled",
        )
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return problem_response(
                request, 401, "Send Authorization: Bearer <METRICS_TOKEN>.", code="unauthorized"
            )
    registry: Metrics = request.app.state.metrics
    try:
        registry.set_queue_depth(await runtime.jobs.depth())
    except Exception:  # noqa: BLE001 - a scrape still answers while the database is down
        logger.warning("queue depth unavailable", exc_info=True)
    broker_depth = getattr(runtime.queue, "broker_depth", None)
    if broker_depth is not None:
        try:
            registry.broker_messages.set(float(await broker_depth()))
        except Exception:  # noqa: BLE001
            logger.warning("broker queue length unavailable", exc_info=True)
    registry.set_models(runtime.registry.state(), ready=runtime.registry.ready())
    registry.set_device_memory()
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
