"""Request/response models of the analysis API (the result itself is `backend.contract`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from backend.contract import AnalysisStatus, OverallStatus, StageOutcome, UtcDatetime


class AnalyzeAccepted(BaseModel):
    """The analysis was stored and queued; poll its status, then read the result."""

    task_id: str = Field(description="The queue job: poll `GET /api/v1/analyze/status/{task_id}`")
    session_id: str = Field(
        description="The analysis: read `GET /api/v1/analyze/result/{session_id}` when finished"
    )
    status: AnalysisStatus = Field(description="`queued`, or the state of an idempotent replay")
    queue_position: int = Field(ge=0, description="Jobs ahead of this one")
    estimated_wait_s: float = Field(ge=0, description="Rough seconds until the result is ready")


class PacsDeliveryOut(BaseModel):
    """Where the result stands on its way back to the PACS (analyses received by STOW-RS)."""

    state: Literal["pending", "sending", "retrying", "delivered", "failed", "skipped"] = Field(
        description="pending: waiting for the analysis to finish; sending; retrying: the last "
        "attempt failed, another follows at `next_attempt_at`; delivered; failed: given up (see "
        "`last_error`); skipped: nothing to send (the analysis failed or was not scored)"
    )
    attempts: int = Field(ge=0, description="STOW-RS attempts so far")
    next_attempt_at: UtcDatetime | None = Field(
        default=None, description="When the next attempt is due (pending and retrying)"
    )
    delivered_at: UtcDatetime | None = None
    last_error: str | None = Field(default=None, description="Why the last attempt failed")
    study_instance_uid: str = Field(description="The study the results are filed into")
    sr_series_instance_uid: str = Field(description="The series of the DICOM SR")
    image_series_instance_uid: str = Field(description="The series of the heatmap image")


class AnalysisStatusOut(BaseModel):
    """Where a submitted analysis is."""

    task_id: str
    session_id: str
    status: AnalysisStatus = Field(
        description="queued, running, complete, partial, failed, cancelled"
    )
    stage: str | None = Field(description="The stage running now (input, vision, ... report)")
    progress: float = Field(ge=0, le=1, description="0-1")
    attempts: int = Field(ge=0, description="Runs so far (a job is retried up to 3 times)")
    error: str | None = Field(default=None, description="Why it failed, when it failed")
    pacs_delivery: PacsDeliveryOut | None = Field(
        default=None,
        description="Delivery of the result to the PACS; null unless the image came by STOW-RS "
        "with a PACS configured (`PACS_DICOMWEB_URL`)",
    )


# The events of `GET /api/v1/analyze/events/{task_id}` (each is `event: <name>` + JSON data).
class StatusEvent(BaseModel):
    """First event, and again whenever the analysis's status changes: where it is now."""

    task_id: str
    session_id: str
    status: AnalysisStatus
    stage: str | None = Field(description="The stage running now, when running")
    progress: float = Field(ge=0, le=1, description="0-1")
    queue_position: int | None = Field(
        default=None, ge=0, description="Jobs ahead of this one, while queued"
    )
    stage_events: bool = Field(
        description="Whether `stage` events can come: only the process that runs an analysis "
        "sees its stages. With Celery workers (QUEUE_BACKEND=celery) this stream follows the job "
        "row instead: status changes and the final state."
    )
    note: str | None = Field(default=None, description="Why there are no stage events")


class StageProgressEvent(BaseModel):
    """A pipeline stage started or ended (one event each; stages that are skipped too)."""

    stage: str = Field(description="input, vision, memory, nlp, fusion or report")
    phase: Literal["start", "end"]
    index: int = Field(ge=0, description="0-based position of the stage")
    total: int = Field(ge=1, description="Number of stages (the final summary comes after them)")
    attempt: int = Field(ge=1, description="Which run of the analysis in this process")
    progress: float = Field(ge=0, le=1, description="0-1 once this event has happened")
    outcome: StageOutcome | None = Field(
        default=None, description="At `end`: ok, skipped, withheld or failed"
    )
    elapsed_ms: float | None = Field(default=None, description="At `end`: how long it took")


class FinalEvent(BaseModel):
    """Last event: the analysis is finished (read the result) or cancelled."""

    task_id: str
    session_id: str
    status: AnalysisStatus
    overall_status: OverallStatus | None = None
    error: str | None = Field(default=None, description="Why it failed, when it failed")
    result_url: str | None = Field(default=None, description="Where the result is, if it has one")


class TimeoutEvent(BaseModel):
    """Last event when the stream's `wait` ran out first: reconnect to keep following."""

    task_id: str
    session_id: str
    status: AnalysisStatus
    stage: str | None
    progress: float = Field(ge=0, le=1)


class StreamErrorEvent(BaseModel):
    """Last event when following failed (e.g. the analysis was deleted): stop or reconnect."""

    message: str
    code: str
