"""HTTP face of analyses: submit, status, events, result, heatmap, cancel."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse

from backend.accounts.dependencies import OwnerDep
from backend.accounts.ratelimit import rate_limit
from backend.analysis import service
from backend.analysis.dependencies import ResultCacheDep, RuntimeDep
from backend.analysis.result_cache import CACHE_CONTROL
from backend.analysis.schemas import (
    AnalysisStatusOut,
    AnalyzeAccepted,
    FinalEvent,
    PacsDeliveryOut,
    StageProgressEvent,
    StatusEvent,
    StreamErrorEvent,
    TimeoutEvent,
)
from backend.audit.dependencies import AuditSpoolDep
from backend.audit.service import audit_read, audit_refused_read, record_audit
from backend.contract import AnalysisResult, AnalysisStatus, HeatmapMode
from backend.errors import AppError
from backend.web.deps import ClientIP, SessionDep
from backend.web.docs import etag_responses, location_response
from backend.web.etags import not_modified
from backend.web.problems import problem_responses
from backend.web.responses import EncodedResponse
from backend.web.sse import HEADERS, HEARTBEAT, sse_event, sse_response_doc
from backend.web.uploads import read_limited

logger = logging.getLogger(__name__)

MAX_WAIT_S = 30.0
MAX_FOLLOW_S = 600.0
HEARTBEAT_S = 10.0
ANALYSIS_EVENTS: dict[str, type[Any]] = {
    "status": StatusEvent,
    "stage": StageProgressEvent,
    "final": FinalEvent,
    "timeout": TimeoutEvent,
    "error": StreamErrorEvent,
}
_EVENT_NAMES = {model: name for name, model in ANALYSIS_EVENTS.items()}

router = APIRouter(prefix="/api/v1/analyze", tags=["analysis"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalyzeAccepted,
    summary="Submit a chest X-ray (PNG, JPEG or DICOM) and optional symptoms for analysis",
    responses={
        **location_response(202, "Accepted: stored and queued"),
        **problem_responses(400, 409, 413, 415, 422, 429),
    },
    dependencies=[rate_limit("analyze")],
)
async def submit(
    runtime: RuntimeDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    response: Response,
    image: Annotated[UploadFile, File(description="Chest X-ray: PNG, JPEG or DICOM")],
    symptoms: Annotated[str | None, Form(description="Free-text symptoms (≤ 5,000 chars)")] = None,
    patient_ref: Annotated[str | None, Form(description="Your reference for the patient")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> AnalyzeAccepted:
    settings = runtime.settings
    data = await read_limited(
        image, settings.max_upload_bytes, what="image", code="image_too_large"
    )
    submitted = await service.submit_analysis(
        session,
        storage=runtime.storage,
        settings=settings,
        owner=owner,
        data=data,
        symptoms=symptoms,
        patient_ref=patient_ref,
        idempotency_key=idempotency_key,
        limiter=runtime.io_limiter,
        client_ip=ip,
    )
    if submitted.created:
        await runtime.queue.enqueue(submitted.job_id)
    else:
        response.headers["Idempotent-Replay"] = "true"
    response.headers["Location"] = f"/api/v1/analyze/status/{submitted.job_id}"
    ahead, wait_s = await service.estimated_wait(session, runtime, submitted)
    return AnalyzeAccepted(
        task_id=submitted.job_id,
        session_id=submitted.analysis_id,
        status=AnalysisStatus(submitted.status),
        queue_position=ahead,
        estimated_wait_s=round(wait_s, 3),
    )


@router.get(
    "/status/{task_id}",
    response_model=AnalysisStatusOut,
    summary="Where a submitted analysis is",
    responses=problem_responses(404),
)
async def get_status(
    task_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    owner: OwnerDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="Long poll: hold the request until the analysis is finished "
            f"(complete, partial, failed or cancelled) or this many seconds (<= {MAX_WAIT_S:g}) "
            "have passed, then answer as usual. 0 answers at once.",
        ),
    ] = 0.0,
) -> AnalysisStatusOut:
    view = await service.wait_for_status(session, runtime, owner, task_id, wait)
    return AnalysisStatusOut(
        task_id=view.job.id,
        session_id=view.analysis.id,
        status=AnalysisStatus(view.analysis.status),
        stage=view.stage,
        progress=round(view.progress, 3),
        attempts=view.job.attempts,
        error=view.analysis.error,
        pacs_delivery=_delivery(view),
    )


def _delivery(view: service.StatusView) -> PacsDeliveryOut | None:
    row = view.delivery
    if row is None:
        return None
    waiting = row.status in {"pending", "retrying"}
    return PacsDeliveryOut(
        state=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if waiting else None,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        study_instance_uid=row.study_instance_uid,
        sr_series_instance_uid=row.sr_series_uid,
        image_series_instance_uid=row.image_series_uid,
    )


@router.get(
    "/events/{task_id}",
    summary="Follow an analysis: its stages as they start and end, then its final state (SSE)",
    response_class=StreamingResponse,
    responses={
        200: sse_response_doc(
            "`status` first (and whenever the status changes), one `stage` event per stage "
            "start and end, then `final`; `timeout` instead when `wait` runs out first "
            "(reconnect to keep following; the stages of a running analysis are replayed). "
            "A client that cannot read streams long-polls `GET /status/{task_id}?wait=N`.",
            ANALYSIS_EVENTS,
        ),
        **problem_responses(404),
    },
)
async def events(
    task_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    owner: OwnerDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_FOLLOW_S,
            description="Follow for at most this many seconds (<= "
            f"{MAX_FOLLOW_S:g}); 0 sends the current state and ends.",
        ),
    ] = 300.0,
) -> StreamingResponse:
    await service.get_job_and_analysis(session, owner, task_id)  # 404 before the stream starts
    # The request's DB session is released before streaming; the stream reads with its own.
    await session.commit()

    async def stream() -> AsyncIterator[bytes]:
        last_sent = time.monotonic()
        try:
            async for event in service.follow_analysis(runtime, owner, task_id, wait):
                if event is not None:
                    yield sse_event(_EVENT_NAMES[type(event)], event.model_dump(mode="json"))
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent >= HEARTBEAT_S:
                    yield HEARTBEAT
                    last_sent = time.monotonic()
        except AppError as exc:  # e.g. the analysis was deleted while followed
            yield sse_event("error", {"message": exc.message, "code": exc.code})
        except Exception:
            logger.exception("analysis events failed", extra={"task_id": task_id})
            yield sse_event(
                "error", {"message": "Following the analysis failed.", "code": "internal_error"}
            )

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


@router.get(
    "/result/{session_id}",
    response_model=AnalysisResult,
    summary="The result of a finished analysis",
    responses={
        **etag_responses(description="The result (immutable once finished)"),
        **problem_responses(404, 409),
    },
)
async def get_result(
    session_id: str,
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    cache: ResultCacheDep,
    audit: AuditSpoolDep,
    heatmap: Annotated[
        HeatmapMode,
        Query(
            description="`inline`: the heatmap as a data URI in `vision.heatmap_base64` (the "
            "seed's form); `url`: a link in `vision.heatmap_url` instead (a much smaller body); "
            "`none`: neither"
        ),
    ] = HeatmapMode.INLINE,
) -> Response:
    async with audit_refused_read(
        audit,
        session,
        action="result.read",
        actor_id=owner.user_id,
        resource_id=session_id,
        client_ip=ip,
    ):
        cached = await service.read_result(session, cache, owner, session_id, heatmap)
    await audit_read(
        audit,
        session,
        actor_id=owner.user_id,
        action="result.read",
        resource_type="analysis",
        resource_id=session_id,
        client_ip=ip,
    )
    if not_modified(request.headers.get("if-none-match"), cached.etag):
        return Response(
            status_code=304, headers={"ETag": cached.etag, "Cache-Control": CACHE_CONTROL}
        )
    return EncodedResponse(cached.body, cached.response_headers())


@router.get(
    "/result/{session_id}/heatmap",
    summary="The heatmap panels of a finished result as an image (immutable)",
    response_class=Response,
    responses={
        **etag_responses("image/jpeg", "The panels: original | heatmap | overlay", binary=True),
        **problem_responses(404, 409),
    },
)
async def get_heatmap(
    session_id: str,
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    cache: ResultCacheDep,
    audit: AuditSpoolDep,
) -> Response:
    async with audit_refused_read(
        audit,
        session,
        action="result.heatmap.read",
        actor_id=owner.user_id,
        resource_id=session_id,
        client_ip=ip,
    ):
        cached, media_type = await service.read_heatmap(session, cache, owner, session_id)
    await audit_read(
        audit,
        session,
        actor_id=owner.user_id,
        action="result.heatmap.read",
        resource_type="analysis",
        resource_id=session_id,
        client_ip=ip,
    )
    # The image of a finished result never changes: caches may keep it for a year.
    headers = {"ETag": cached.etag, "Cache-Control": "private, max-age=31536000, immutable"}
    if not_modified(request.headers.get("if-none-match"), cached.etag):
        return Response(status_code=304, headers=headers)
    return Response(content=cached.body, media_type=media_type, headers=headers)


@router.delete(
    "/result/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a finished analysis: its upload, result, heatmap and the chats about it",
    responses=problem_responses(404, 409),
)
async def delete_result(
    session_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    cache: ResultCacheDep,
) -> None:
    await service.delete_analysis(session, runtime.storage, owner, session_id, client_ip=ip)
    await session.commit()  # gone from the database before this process's cache forgets it
    cache.discard([session_id])


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_200_OK,
    response_model=AnalysisStatusOut,
    summary="Cancel a queued analysis",
    responses=problem_responses(404, 409),
)
async def cancel(
    task_id: str, runtime: RuntimeDep, session: SessionDep, owner: OwnerDep, ip: ClientIP
) -> AnalysisStatusOut:
    await service.cancel_job(session, owner, task_id)
    job, analysis = await service.get_job_and_analysis(session, owner, task_id)
    runtime.pipeline.watch.notify(analysis.id)
    runtime.pipeline.feed.finished(analysis.id)
    await record_audit(
        session,
        actor_id=owner.user_id,
        action="analysis.cancelled",
        resource_type="analysis",
        resource_id=analysis.id,
        client_ip=ip,
        details={"task_id": task_id},
    )
    return AnalysisStatusOut(
        task_id=job.id,
        session_id=analysis.id,
        status=AnalysisStatus.CANCELLED,
        stage=analysis.stage,
        progress=1.0,
        attempts=job.attempts,
        error=None,
    )
