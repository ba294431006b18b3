"""HTTP face of analyses: submit, status, result, cancel."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile, status

from backend.analysis import service
from backend.api.deps import OwnerDep, SessionDep, StateDep
from backend.api.errors import problem_responses
from backend.api.etags import not_modified
from backend.api.schemas.analysis import AnalysisResultOut, AnalysisStatusOut, AnalyzeAccepted
from backend.api.uploads import read_limited
from backend.auth.audit import audit_read, record_audit
from backend.auth.dependencies import ClientIP
from backend.auth.ratelimit import rate_limit

MAX_WAIT_S = 30.0

router = APIRouter(prefix="/api/v1/analyze", tags=["analysis"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalyzeAccepted,
    summary="Submit a chest X-ray (PNG, JPEG or DICOM) and optional symptoms for analysis",
    responses=problem_responses(400, 409, 413, 415, 422, 429),
    dependencies=[rate_limit("analyze")],
)
async def submit(
    state: StateDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
    response: Response,
    image: Annotated[UploadFile, File(description="Chest X-ray: PNG, JPEG or DICOM")],
    symptoms: Annotated[str | None, Form(description="Free-text symptoms (≤ 5,000 chars)")] = None,
    patient_ref: Annotated[str | None, Form(description="Your reference for the patient")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> AnalyzeAccepted:
    settings = state.settings
    data = await read_limited(
        image, settings.max_upload_bytes, what="image", code="image_too_large"
    )
    submitted = await service.submit_analysis(
        session,
        storage=state.storage,
        settings=settings,
        owner=owner,
        data=data,
        symptoms=symptoms,
        patient_ref=patient_ref,
        idempotency_key=idempotency_key,
        limiter=state.extras["io_limiter"],
        client_ip=ip,
    )
    if submitted.created:
        await state.queue.enqueue(submitted.job_id)
    else:
        response.headers["Idempotent-Replay"] = "true"
    queued = submitted.status == "queued"
    ahead = await state.jobs.queued_ahead(submitted.job_id, session=session) if queued else 0
    workers = max(1, settings.worker_concurrency)
    wait = (ahead / workers + 1) * state.pipeline.avg_total_ms / 1000.0
    return AnalyzeAccepted(
        task_id=submitted.job_id,
        session_id=submitted.analysis_id,
        status=submitted.status,
        queue_position=ahead,
        estimated_wait_s=round(wait if submitted.status == "queued" else 0.0, 3),
    )


@router.get(
    "/status/{task_id}",
    response_model=AnalysisStatusOut,
    summary="Where a submitted analysis is",
    responses=problem_responses(404),
)
async def get_status(
    task_id: str,
    state: StateDep,
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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        job, analysis = await service.get_job_and_analysis(session, owner, task_id)
        remaining = deadline - loop.time()
        if analysis.status in service.FINAL_STATES or remaining <= 0:
            break
        analysis_id = analysis.id
        # End the read transaction (frees the pooled connection and the snapshot) while
        # waiting, so the next read sees what the worker committed.
        await session.rollback()
        await state.pipeline.watch.wait(analysis_id, remaining)
    stage, progress = analysis.stage, analysis.progress
    live = state.pipeline.progress.get(analysis.id)
    if live is not None and analysis.status == "running":
        stage, progress = live
    return AnalysisStatusOut(
        task_id=job.id,
        session_id=analysis.id,
        status=analysis.status,
        stage=stage,
        progress=round(float(progress or 0.0), 3),
        attempts=job.attempts,
        error=analysis.error,
    )


@router.get(
    "/result/{session_id}",
    response_model=AnalysisResultOut,
    summary="The result of a finished analysis",
    responses=problem_responses(404, 409),
)
async def get_result(
    session_id: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    owner: OwnerDep,
    ip: ClientIP,
) -> Response:
    # A finished result is immutable: its serialised body is cached with its owner, and a
    # recently confirmed entry is served without touching the database (see ResultCache).
    cached = state.results.fresh(session_id, owner.key)
    if cached is None:
        # Owner, status and completion time first (the result JSON stays unread).
        analysis = await service.get_analysis(session, owner, session_id, with_result=False)
        version = (
            analysis.status,
            analysis.completed_at.isoformat() if analysis.completed_at else "",
        )
        if analysis.status in service.FINAL_STATES:
            cached = state.results.confirmed(analysis.id, owner.key, version)
        if cached is None:
            await session.refresh(analysis, ["result"])
            result = service.finished_result(analysis)  # 409 while queued, running or cancelled
            body = AnalysisResultOut.model_validate(result).model_dump_json(by_alias=True).encode()
            cached = state.results.put(analysis.id, body, owner_key=owner.key, version=version)
    await audit_read(
        state.audit,
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


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_200_OK,
    response_model=AnalysisStatusOut,
    summary="Cancel a queued analysis",
    responses=problem_responses(404, 409),
)
async def cancel(
    task_id: str, state: StateDep, session: SessionDep, owner: OwnerDep, ip: ClientIP
) -> AnalysisStatusOut:
    await service.cancel_job(session, owner, task_id)
    job, analysis = await service.get_job_and_analysis(session, owner, task_id)
    state.pipeline.watch.notify(analysis.id)
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
        status="cancelled",
        stage=analysis.stage,
        progress=1.0,
        attempts=job.attempts,
        error=None,
    )
