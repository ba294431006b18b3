"""HTTP face of analyses: submit, status, result, heatmap, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile, status

from backend.accounts.dependencies import OwnerDep
from backend.accounts.ratelimit import rate_limit
from backend.analysis import service
from backend.analysis.dependencies import ResultCacheDep, RuntimeDep
from backend.analysis.schemas import AnalysisStatusOut, AnalyzeAccepted
from backend.audit.dependencies import AuditSpoolDep
from backend.audit.service import audit_read, record_audit
from backend.contract import AnalysisResult, AnalysisStatus, HeatmapMode
from backend.web.deps import ClientIP, SessionDep
from backend.web.docs import etag_responses, location_response
from backend.web.etags import not_modified
from backend.web.problems import problem_responses
from backend.web.uploads import read_limited

MAX_WAIT_S = 30.0

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
    )


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
    headers = {"ETag": cached.etag, "Cache-Control": "private, no-cache"}
    if not_modified(request.headers.get("if-none-match"), cached.etag):
        return Response(status_code=304, headers=headers)
    return Response(content=cached.body, media_type="application/json", headers=headers)


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
