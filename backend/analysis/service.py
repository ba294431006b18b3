"""Analysis domain logic: accept uploads durably, report status, return results, cancel."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from backend.accounts.caller import Owner
from backend.analysis.feed import StageEvent
from backend.analysis.result_cache import CachedBody, ResultCache, variant_key
from backend.analysis.schemas import FinalEvent, StageProgressEvent, StatusEvent, TimeoutEvent
from backend.analysis.watch import POLL_S
from backend.audit.service import record_audit
from backend.config import Settings
from backend.contract import (
    DISCLAIMER,
    FINAL_STATUSES,
    AnalysisResult,
    AnalysisStatus,
    HeatmapMode,
    OverallStatus,
    Provenance,
    load_result,
)
from backend.db.base import new_id, utcnow
from backend.db.models import Analysis, ChatMessage, Job, PacsDelivery
from backend.errors import ConflictError, NotFoundError, UnprocessableError
from backend.imaging import DecodedImage, ImageLimits, decode_image
from backend.storage import ObjectStorage

if TYPE_CHECKING:
    from backend.analysis.runtime import AnalysisRuntime

logger = logging.getLogger(__name__)


# Given the decoded upload and the new analysis id: raise to refuse, or rows to insert with it.
ExtraRows = Callable[[DecodedImage, str], Sequence[object]]


@dataclass(frozen=True)
class Submitted:
    analysis_id: str
    job_id: str
    status: str
    created: bool  # False when an Idempotency-Key matched an earlier upload


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits.from_settings(settings)


def _validate_text(symptoms: str | None, patient_ref: str | None, settings: Settings) -> None:
    if symptoms is not None and len(symptoms) > settings.max_symptoms_chars:
        raise UnprocessableError(
            f"symptoms is {len(symptoms):,} characters; the limit is "
            f"{settings.max_symptoms_chars:,}.",
            code="symptoms_too_long",
        )
    if symptoms is not None and "\x00" in symptoms:
        raise UnprocessableError("symptoms contains a NUL character.", code="invalid_text")
    if patient_ref is not None and (len(patient_ref) > 128 or "\x00" in patient_ref):
        raise UnprocessableError(
            "patient_ref must be at most 128 printable characters.", code="invalid_patient_ref"
        )


async def find_by_idempotency_key(
    session: AsyncSession, owner: Owner, key: str, request_sha256: str | None = None
) -> Submitted | None:
    """The owner's earlier submission under `key`; 422 when it was a different request."""
    row = (
        await session.execute(
            select(Analysis.id, Analysis.status, Job.id, Analysis.request_sha256)
            .join(Job, Job.analysis_id == Analysis.id)
            .where(Analysis.owner_key == owner.key, Analysis.idempotency_key == key)
            .order_by(Job.created_at)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    if request_sha256 is not None and row[3] is not None and row[3] != request_sha256:
        raise UnprocessableError(
            "This Idempotency-Key was already used for a different request (another image or "
            "other form fields); use a new key for a new request.",
            code="idempotency_key_reused",
        )
    return Submitted(analysis_id=row[0], job_id=row[2], status=row[1], created=False)


def request_fingerprint(data: bytes, symptoms: str | None, patient_ref: str | None) -> str:
    """SHA-256 over the upload and its form fields: what a replay under one key must repeat."""
    digest = hashlib.sha256()
    for part in (hashlib.sha256(data).hexdigest(), symptoms or "", patient_ref or ""):
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()


async def submit_analysis(
    session: AsyncSession,
    *,
    storage: ObjectStorage,
    settings: Settings,
    owner: Owner,
    data: bytes,
    symptoms: str | None,
    patient_ref: str | None,
    idempotency_key: str | None,
    limiter: anyio.CapacityLimiter,
    client_ip: str | None = None,
    extra_rows: ExtraRows | None = None,
) -> Submitted:
    """Validate, store the image, insert analysis + job + audit event and COMMIT once.

    The caller then enqueues. The audit event shares the submission's transaction: a
    submission is never committed without its event, and on SQLite one commit holds the
    write lock once. `extra_rows(decoded, analysis_id)` may refuse the decoded image (by
    raising, before anything is stored) or return rows to commit with the analysis (the
    DICOMweb receiver's PACS outbox row).
    """
    symptoms = symptoms.strip() if symptoms else None
    patient_ref = patient_ref.strip() if patient_ref else None
    _validate_text(symptoms, patient_ref, settings)
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 128:
            raise UnprocessableError(
                "Idempotency-Key must be 1-128 characters.", code="invalid_idempotency_key"
            )
        fingerprint = await anyio.to_thread.run_sync(
            request_fingerprint, data, symptoms, patient_ref, limiter=limiter
        )
        existing = await find_by_idempotency_key(session, owner, idempotency_key, fingerprint)
        if existing is not None:
            return existing
    else:
        fingerprint = None
    decoded, digest = await anyio.to_thread.run_sync(
        _decode_and_hash, data, image_limits(settings), limiter=limiter
    )
    analysis_id = new_id()
    rows = extra_rows(decoded, analysis_id) if extra_rows is not None else ()
    key = f"uploads/{utcnow():%Y/%m/%d}/{analysis_id}.{decoded.format}"
    await anyio.to_thread.run_sync(storage.put, key, data, limiter=limiter)
    now = utcnow()
    analysis = Analysis(
        id=analysis_id,
        owner_id=owner.user_id,
        owner_key=owner.key,
        patient_ref=patient_ref,
        symptoms=symptoms or None,
        idempotency_key=idempotency_key,
        request_sha256=fingerprint,
        image_key=key,
        image_sha256=digest,
        image_format=decoded.format,
        image_width=decoded.width,
        image_height=decoded.height,
        status="queued",
        created_at=now,
    )
    job = Job(
        id=new_id(),
        analysis_id=analysis_id,
        status="queued",
        max_attempts=settings.job_max_attempts,
        available_at=now,
        created_at=now,
    )
    session.add(analysis)
    session.add(job)
    session.add_all(rows)
    try:
        await session.flush()  # a duplicate Idempotency-Key fails here, before the audit
        await record_audit(
            session,
            actor_id=owner.user_id,
            action="analysis.submitted",
            resource_type="analysis",
            resource_id=analysis_id,
            client_ip=client_ip,
            details={"task_id": job.id},
        )
        await session.commit()
    except IntegrityError:
        # Two retries with one Idempotency-Key raced: the first one won, answer with it.
        await session.rollback()
        await anyio.to_thread.run_sync(storage.delete, key, limiter=limiter)
        if idempotency_key is not None:
            existing = await find_by_idempotency_key(session, owner, idempotency_key, fingerprint)
            if existing is not None:
                return existing
        raise
    return Submitted(analysis_id=analysis_id, job_id=job.id, status="queued", created=True)


def _decode_and_hash(data: bytes, limits: ImageLimits) -> tuple[DecodedImage, str]:
    decoded = decode_image(data, limits)
    return decoded, hashlib.sha256(data).hexdigest()


async def get_job_and_analysis(
    session: AsyncSession, owner: Owner, job_id: str
) -> tuple[Job, Analysis]:
    row = (
        await session.execute(
            select(Job, Analysis)
            .join(Analysis, Analysis.id == Job.analysis_id)
            .where(Job.id == job_id, Analysis.owner_key == owner.key)
            .options(defer(Analysis.result))  # status reads never need the result JSON
        )
    ).first()
    if row is None:
        raise NotFoundError(f"No analysis task {job_id}.", code="task_not_found")
    return row[0], row[1]


async def get_analysis(
    session: AsyncSession, owner: Owner, session_id: str, *, with_result: bool = True
) -> Analysis:
    """The caller's analysis (404 otherwise); ``with_result=False`` leaves the big JSON unread."""
    query = select(Analysis).where(Analysis.id == session_id, Analysis.owner_key == owner.key)
    if not with_result:
        query = query.options(defer(Analysis.result))
    analysis = await session.scalar(query)
    if analysis is None:
        raise NotFoundError(f"No analysis session {session_id}.", code="session_not_found")
    return analysis


def finished_result(analysis: Analysis) -> AnalysisResult:
    """The stored result of a finished analysis; 409 while it is still queued or running."""
    status = AnalysisStatus(analysis.status)
    if status is AnalysisStatus.CANCELLED:
        raise ConflictError("This analysis was cancelled.", code="analysis_cancelled")
    if not status.is_final:
        raise ConflictError(
            f"The analysis is not finished yet (status: {analysis.status}).",
            code="analysis_not_finished",
            extra={"analysis_status": analysis.status},
        )
    if analysis.result is None:
        # Failed before the pipeline ran (e.g. the worker died three times).
        return failed_result(analysis)
    # Times the stored result lacks (early rows) are the row's own.
    return load_result(
        analysis.result, created_at=analysis.created_at, completed_at=analysis.completed_at
    )


def failed_result(analysis: Analysis) -> AnalysisResult:
    """The result of an analysis that failed before the pipeline could write one."""
    reason = analysis.error or "the analysis failed"
    return AnalysisResult(
        session_id=analysis.id,
        patient_ref=analysis.patient_ref,
        created_at=analysis.created_at,
        completed_at=analysis.completed_at,
        overall_status=OverallStatus.FAILED,
        report_text=f"The analysis failed: {reason}. {DISCLAIMER}",
        warnings=[reason],
        provenance=Provenance(image_sha256=analysis.image_sha256),
    )


async def cancel_job(session: AsyncSession, owner: Owner, job_id: str) -> str:
    """Cancel a queued job; a running or finished one cannot be cancelled (409)."""
    job, analysis = await get_job_and_analysis(session, owner, job_id)
    if analysis.status == "cancelled":
        return "cancelled"
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "queued")
        .values(status="cancelled", finished_at=utcnow())
    )
    if getattr(result, "rowcount", 0) != 1:
        raise ConflictError(
            f"The analysis is {analysis.status} and can no longer be cancelled.",
            code="not_cancellable",
        )
    await session.execute(
        update(Analysis)
        .where(Analysis.id == analysis.id)
        .values(status="cancelled", completed_at=utcnow(), progress=1.0)
    )
    return "cancelled"


async def delete_analyses(
    session: AsyncSession, storage: ObjectStorage, analyses: Sequence[tuple[str, str]]
) -> list[str]:
    """Delete (id, upload key) analyses with their uploads, jobs and chats; returns the ids."""
    # Uploads first: should the database step fail, no orphaned X-ray outlives the request.
    for _, key in analyses:
        try:
            await anyio.to_thread.run_sync(storage.delete, key)
        except FileNotFoundError:
            pass
    ids = [analysis_id for analysis_id, _ in analyses]
    if ids:
        await session.execute(delete(ChatMessage).where(ChatMessage.analysis_id.in_(ids)))
        await session.execute(delete(Job).where(Job.analysis_id.in_(ids)))
        await session.execute(delete(Analysis).where(Analysis.id.in_(ids)))
    return ids


async def delete_analysis(
    session: AsyncSession,
    storage: ObjectStorage,
    owner: Owner,
    session_id: str,
    *,
    client_ip: str | None = None,
) -> None:
    """Delete one finished analysis of the owner's: upload, result, job and chats about it."""
    analysis = await get_analysis(session, owner, session_id, with_result=False)
    if analysis.status not in FINAL_STATUSES:
        raise ConflictError(
            f"The analysis is {analysis.status}: cancel it or wait until it has finished.",
            code="analysis_not_finished",
            extra={"analysis_status": analysis.status},
        )
    await delete_analyses(session, storage, [(analysis.id, analysis.image_key)])
    await record_audit(
        session,
        actor_id=owner.user_id,
        action="analysis.deleted",
        resource_type="analysis",
        resource_id=session_id,
        client_ip=client_ip,
    )


# --- reads: status with long poll, finished results in their served forms ------------------
@dataclass(frozen=True)
class StatusView:
    job: Job
    analysis: Analysis
    stage: str | None
    progress: float
    delivery: PacsDelivery | None = None  # its way back to the PACS, for STOW-RS uploads


async def wait_for_status(
    session: AsyncSession, runtime: AnalysisRuntime, owner: Owner, task_id: str, wait_s: float
) -> StatusView:
    """The task's status, once it is finished or `wait_s` seconds have passed (long poll)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        job, analysis = await get_job_and_analysis(session, owner, task_id)
        remaining = deadline - loop.time()
        if analysis.status in FINAL_STATUSES or remaining <= 0:
            break
        analysis_id = analysis.id
        # End the read transaction (frees the pooled connection and the snapshot) while
        # waiting, so the next read sees what the worker committed.
        await session.rollback()
        await runtime.pipeline.watch.wait(analysis_id, remaining)
    view = _status_view(runtime, job, analysis)
    delivery = await session.scalar(
        select(PacsDelivery).where(PacsDelivery.analysis_id == analysis.id)
    )
    return dataclasses.replace(view, delivery=delivery)


def _status_view(runtime: AnalysisRuntime, job: Job, analysis: Analysis) -> StatusView:
    """The row's stage and progress, or this process's live ones while it runs the analysis."""
    stage, progress = analysis.stage, float(analysis.progress or 0.0)
    live = runtime.pipeline.progress.get(analysis.id)
    if live is not None and analysis.status == AnalysisStatus.RUNNING:
        stage, progress = live
    return StatusView(job=job, analysis=analysis, stage=stage, progress=progress)


# --- events: stage start/end as they happen, then the final state --------------------------
AnalysisEvent = StatusEvent | StageProgressEvent | FinalEvent | TimeoutEvent
NO_STAGE_EVENTS = (
    "Stage events come from the process that runs the analysis; with Celery workers "
    "(QUEUE_BACKEND=celery) this stream follows the job row: status changes and the final state."
)


async def follow_analysis(
    runtime: AnalysisRuntime, owner: Owner, task_id: str, wait_s: float
) -> AsyncIterator[AnalysisEvent | None]:
    """The events of one analysis for `wait_s` seconds: `status`, `stage`..., then `final`.

    Stage events come from this process's pipeline (replayed from the start of the run when
    the follower joins late); status changes and the final state come from the job row, which
    is re-read whenever no stage event came for `POLL_S` seconds and at once when a run of this
    process ends. So the stream also works when another process runs the analysis. Yields None
    when there is nothing new (the caller may send a heartbeat). Opens its own database sessions:
    it outlives the request's.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    live = runtime.settings.queue_backend == "local"
    job, analysis = await _read_job(runtime, owner, task_id)
    with runtime.pipeline.feed.subscribe(analysis.id) as subscription:
        view = _status_view(runtime, job, analysis)
        yield await _status_event(runtime, view, live)
        for logged in subscription.replay:
            yield _stage_event(logged)
        last = view.analysis.status
        while last not in FINAL_STATUSES:
            remaining = deadline - loop.time()
            if remaining <= 0:
                yield TimeoutEvent(
                    task_id=task_id,
                    session_id=view.analysis.id,
                    status=AnalysisStatus(last),
                    stage=view.stage,
                    progress=round(view.progress, 3),
                )
                return
            event = await subscription.next(min(remaining, POLL_S))
            if event is not None:
                yield _stage_event(event)
                continue
            view = _status_view(runtime, *await _read_job(runtime, owner, task_id))
            if view.analysis.status != last and view.analysis.status not in FINAL_STATUSES:
                yield await _status_event(runtime, view, live)
            else:
                yield None
            last = view.analysis.status
    status = AnalysisStatus(view.analysis.status)
    yield FinalEvent(
        task_id=task_id,
        session_id=view.analysis.id,
        status=status,
        overall_status=OverallStatus(view.analysis.overall_status)
        if view.analysis.overall_status
        else None,
        error=view.analysis.error,
        result_url=f"/api/v1/analyze/result/{view.analysis.id}" if status.has_result else None,
    )


async def _read_job(runtime: AnalysisRuntime, owner: Owner, task_id: str) -> tuple[Job, Analysis]:
    async with runtime.database.sessionmaker() as session:
        return await get_job_and_analysis(session, owner, task_id)


async def _status_event(runtime: AnalysisRuntime, view: StatusView, live: bool) -> StatusEvent:
    ahead = None
    if view.analysis.status == AnalysisStatus.QUEUED:
        ahead = await runtime.jobs.queued_ahead(view.job.id)
    return StatusEvent(
        task_id=view.job.id,
        session_id=view.analysis.id,
        status=AnalysisStatus(view.analysis.status),
        stage=view.stage,
        progress=round(view.progress, 3),
        queue_position=ahead,
        stage_events=live,
        note=None if live else NO_STAGE_EVENTS,
    )


def _stage_event(event: StageEvent) -> StageProgressEvent:
    return StageProgressEvent.model_validate(event, from_attributes=True)


async def estimated_wait(
    session: AsyncSession, runtime: AnalysisRuntime, submitted: Submitted
) -> tuple[int, float]:
    """(jobs ahead in the queue, seconds until the result is likely ready)."""
    if submitted.status != AnalysisStatus.QUEUED:
        return 0, 0.0
    ahead = await runtime.jobs.queued_ahead(submitted.job_id, session=session)
    workers = max(1, runtime.settings.worker_concurrency)
    return ahead, (ahead / workers + 1) * runtime.pipeline.avg_total_ms / 1000.0


def heatmap_path(session_id: str) -> str:
    return f"/api/v1/analyze/result/{session_id}/heatmap"


def served_form(result: AnalysisResult, mode: HeatmapMode) -> AnalysisResult:
    """The result as a client asked for it: heatmap inline (the stored form), linked or left out."""
    if result.vision is None or mode is HeatmapMode.INLINE:
        return result
    linked = mode is HeatmapMode.URL and bool(result.vision.heatmap_base64)
    vision = result.vision.model_copy(
        update={
            "heatmap_base64": None,
            "heatmap_url": heatmap_path(result.session_id) if linked else None,
        }
    )
    return result.model_copy(update={"vision": vision})


async def read_result(
    session: AsyncSession,
    cache: ResultCache,
    owner: Owner,
    session_id: str,
    mode: HeatmapMode = HeatmapMode.INLINE,
) -> CachedBody:
    """The serialised result in the asked form, from the per-process cache when confirmed.

    A finished result is immutable: its body is cached with its owner, and a recently confirmed
    entry is served without touching the database (see ResultCache).
    """
    key = variant_key(session_id, None if mode is HeatmapMode.INLINE else mode.value)
    cached = cache.fresh(key, owner.key)
    if cached is not None:
        return cached
    # When the entry is due for its check, concurrent reads of it wait for one check.
    return await cache.single_flight(
        (key, owner.key), lambda: _confirm_result(session, cache, owner, session_id, mode, key)
    )


async def _confirm_result(
    session: AsyncSession,
    cache: ResultCache,
    owner: Owner,
    session_id: str,
    mode: HeatmapMode,
    key: str,
) -> CachedBody:
    cached: CachedBody | None = None
    # Owner, status and completion time first (the result JSON stays unread).
    analysis = await get_analysis(session, owner, session_id, with_result=False)
    version = (analysis.status, analysis.completed_at.isoformat() if analysis.completed_at else "")
    if analysis.status in FINAL_STATUSES:
        cached = cache.confirmed(key, owner.key, version)
    if cached is None:
        await session.refresh(analysis, ["result"])
        result = finished_result(analysis)  # 409 while queued, running or cancelled
        body = served_form(result, mode).model_dump_json().encode()
        cached = cache.put(key, body, owner_key=owner.key, version=version)
    return cached


async def read_heatmap(
    session: AsyncSession, cache: ResultCache, owner: Owner, session_id: str
) -> tuple[CachedBody, str]:
    """The heatmap image of a finished result and its media type; 404 when it has none."""
    key = variant_key(session_id, "heatmap")
    cached = cache.fresh(key, owner.key)
    if cached is None:
        analysis = await get_analysis(session, owner, session_id)
        image = finished_result(analysis).heatmap_bytes()
        if image is None:
            raise NotFoundError(
                "This result has no heatmap (the image was not scored).", code="heatmap_not_found"
            )
        version = (
            analysis.status,
            analysis.completed_at.isoformat() if analysis.completed_at else "",
        )
        cached = cache.put(key, image[0], owner_key=owner.key, version=version)
    media_type = "image/png" if cached.body.startswith(b"\x89PNG") else "image/jpeg"
    return cached, media_type
