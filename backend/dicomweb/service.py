"""STOW-RS receive: each DICOM instance of a request becomes an analysis of its own.

Each instance is committed on its own (analysis + job + audit event, and the PACS outbox row
when results go back), then queued; one bad instance never costs the others. A re-sent instance
(same SOP Instance UID, same caller) answers with its first analysis instead of a second one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.caller import Owner
from backend.analysis.runtime import AnalysisRuntime
from backend.analysis.service import submit_analysis
from backend.dicomweb.multipart import DICOM, Part
from backend.dicomweb.outbox import new_delivery
from backend.dicomweb.stow import (
    Accepted,
    FailureReason,
    InstanceId,
    Refused,
    StowOutcome,
    failure_reason,
    identify,
)
from backend.errors import AppError, BadRequestError
from backend.imaging import DecodedImage, DicomInfo, ImageRejected

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
# Instances past DICOMWEB_MAX_INSTANCES that are still named in the answer; then reading stops.
MAX_NAMED_EXTRAS = 100


async def store_instances(
    session: AsyncSession,
    parts: AsyncIterator[Part],
    *,
    runtime: AnalysisRuntime,
    owner: Owner,
    client_ip: str | None,
) -> StowOutcome:
    """Accept or refuse each part of a STOW-RS request, in order."""
    outcome = StowOutcome()
    limit = runtime.settings.dicomweb_max_instances
    try:
        async for part in parts:
            if len(outcome) >= limit + MAX_NAMED_EXTRAS:
                # Thousands of tiny parts must not cost a thread hop and an answer item each.
                detail = "The rest of the request was not read (too many instances)."
                outcome.refused.append(
                    Refused(InstanceId(), FailureReason.OUT_OF_RESOURCES, detail)
                )
                break
            instance = await anyio.to_thread.run_sync(
                identify, part.data, limiter=runtime.io_limiter
            )
            if len(outcome) >= limit:
                detail = f"More than {limit} instances in one request; send the rest in another."
                outcome.refused.append(Refused(instance, FailureReason.OUT_OF_RESOURCES, detail))
                continue
            await _store_one(session, part, instance, runtime, owner, client_ip, outcome)
    except BadRequestError as exc:
        if not len(outcome):
            raise  # nothing was stored: the whole request is bad syntax (400)
        # Instances before the damage are stored and queued: report the rest as unreadable.
        outcome.refused.append(Refused(InstanceId(), FailureReason.CANNOT_UNDERSTAND, exc.message))
    return outcome


def _precheck(part: Part, instance: InstanceId, limit: int) -> Refused | None:
    if part.too_large:
        return Refused(
            instance,
            FailureReason.OUT_OF_RESOURCES,
            f"The instance is {part.size / MiB:.1f} MB; the limit is {limit / MiB:.0f} MB.",
        )
    if part.content_type not in (None, DICOM):
        return Refused(
            instance,
            FailureReason.CANNOT_UNDERSTAND,
            f"The part is {part.content_type[:100]}, not {DICOM}.",
        )
    if not instance.sop_instance_uid and instance.sop_class_uid:
        return Refused(
            instance,
            FailureReason.DOES_NOT_MATCH_SOP_CLASS,
            "The instance has no SOP Instance UID.",
        )
    return None


async def _store_one(
    session: AsyncSession,
    part: Part,
    instance: InstanceId,
    runtime: AnalysisRuntime,
    owner: Owner,
    client_ip: str | None,
    outcome: StowOutcome,
) -> None:
    settings = runtime.settings
    refused = _precheck(part, instance, settings.max_upload_bytes)
    if refused is not None:
        outcome.refused.append(refused)
        return
    seen: list[DicomInfo] = []

    def outbox_rows(decoded: DecodedImage, analysis_id: str) -> Sequence[object]:
        info = decoded.dicom
        if info is None:
            raise ImageRejected("The part is not a DICOM file.", code="not_dicom")
        if not info.study_instance_uid or not info.sop_instance_uid:
            raise ImageRejected(
                "The instance has no Study or SOP Instance UID.", code="dicom_missing_uids"
            )
        seen.append(info)
        if settings.pacs_dicomweb_url is None:
            return ()
        return (new_delivery(analysis_id, info.study_instance_uid),)

    key = f"dicom:{instance.sop_instance_uid}" if instance.sop_instance_uid else None
    try:
        submitted = await submit_analysis(
            session,
            storage=runtime.storage,
            settings=settings,
            owner=owner,
            data=part.data,
            symptoms=None,
            patient_ref=None,
            idempotency_key=key,
            limiter=runtime.io_limiter,
            client_ip=client_ip,
            extra_rows=outbox_rows,
        )
    except AppError as exc:
        await session.rollback()
        outcome.refused.append(Refused(instance, failure_reason(exc), exc.message))
        return
    except Exception as exc:  # noqa: BLE001 - one instance's failure is reported, not raised
        await session.rollback()
        # The type only: a message could quote the file's contents.
        logger.warning(
            "a STOW-RS instance could not be stored", extra={"error": type(exc).__name__}
        )
        outcome.refused.append(
            Refused(
                instance,
                FailureReason.PROCESSING_FAILURE,
                "The instance could not be stored; send it again later.",
            )
        )
        return
    if submitted.created:
        await runtime.queue.enqueue(submitted.job_id)
    if not instance.sop_instance_uid and seen:
        info = seen[0]
        instance = InstanceId(info.sop_class_uid, info.sop_instance_uid, info.study_instance_uid)
    outcome.accepted.append(Accepted(instance, submitted.analysis_id, submitted.job_id))
