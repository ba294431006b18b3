"""Liveness and readiness."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from backend import __version__
from backend.analysis.runtime import AnalysisRuntime
from backend.chat.service import ChatService
from backend.db.session import Database
from backend.observability.middleware import RouteLabel
from backend.web.problems import problem_response, problem_responses
from backend.web.state import AppState, app_state

StateDep = Annotated[AppState, Depends(app_state)]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/health", tags=["health"])


class Health(BaseModel):
    status: str = Field(description="`ok` while the process runs", examples=["ok"])
    version: str = Field(description="MedSight version")
    uptime_s: float = Field(description="Seconds since start")


class Readiness(BaseModel):
    status: str = Field(
        description="`ready` (else a 503 problem naming the checks)", examples=["ready"]
    )
    checks: dict[str, Any] = Field(
        description="Per dependency (database, storage, models, queue, ...): its state"
    )


LIVE_PATH = "/api/v1/health"
_LIVE_HEADERS = [(b"content-type", b"application/json")]
_LIVE_ROUTE = RouteLabel(LIVE_PATH)


def live_body(state: AppState) -> bytes:
    """The liveness answer: status, version, seconds since start."""
    uptime = round(time.time() - state.started_at, 3)
    return b'{"status":"ok","version":"%s","uptime_s":%s}' % (
        __version__.encode(),
        repr(uptime).encode(),
    )


@router.get("", response_model=Health, summary="Liveness: the process is up")
async def live(request: Request) -> Response:
    # Usually answered by `Liveness` below, before routing; this route documents it and
    # answers whenever that layer is not in front of the app.
    return Response(live_body(request.app.state.medsight), media_type="application/json")


class Liveness:
    """`GET /api/v1/health` answered before routing: load balancers probe it often, and it
    needs no dependency, session or model. Sits inside the request middleware, so the probe
    still gets a request id, the security headers, the latency metric and an access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == LIVE_PATH and scope["method"] == "GET":
            state = getattr(getattr(scope.get("app"), "state", None), "medsight", None)
            if isinstance(state, AppState):
                scope["route"] = _LIVE_ROUTE  # the metric's label, as the router would set it
                body = live_body(state)
                headers = [*_LIVE_HEADERS, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: database, storage, models and queue",
    responses=problem_responses(503),
)
async def ready(request: Request, state: StateDep) -> Readiness | JSONResponse:
    checks: dict[str, Any] = {}
    ok = True
    engine = state.get(Database).engine
    runtime = state.get(AnalysisRuntime)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": engine.dialect.name}
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        ok = False
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        runtime.storage.check()
        checks["storage"] = {"ok": True, "backend": runtime.storage.name}
    except Exception as exc:  # noqa: BLE001
        ok = False
        # The class only: the message may name paths, buckets or endpoints (logged instead).
        logger.warning("storage not ready", exc_info=True)
        checks["storage"] = {"ok": False, "error": type(exc).__name__}
    models = runtime.registry.state()
    models_ok = runtime.registry.ready()
    checks["models"] = {"ok": models_ok, **models}
    ok = ok and models_ok
    try:
        queue_state = await runtime.queue.state()
        queue_ok = bool(queue_state.get("alive", 1))
        checks["queue"] = {"ok": queue_ok, **queue_state}
        ok = ok and queue_ok
    except Exception as exc:  # noqa: BLE001
        ok = False
        checks["queue"] = {"ok": False, "error": type(exc).__name__}
    chat = state.find(ChatService)
    corpus = chat.corpus_status if chat is not None else None
    if corpus is not None:
        checks["corpus"] = corpus
    if not ok:
        failing = ", ".join(
            k for k, v in checks.items() if isinstance(v, dict) and not v.get("ok", True)
        )
        return problem_response(
            request, 503, f"Not ready: {failing}.", code="not_ready", extra={"checks": checks}
        )
    return Readiness(status="ready", checks=checks)
