"""Request/response models of the analysis API (the result itself is `backend.contract`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from backend.contract import AnalysisStatus


class AnalyzeAccepted(BaseModel):
    """The analysis was stored and queued; poll its status, then read the result."""

    task_id: str = Field(description="The queue job: poll `GET /api/v1/analyze/status/{task_id}`")
    session_id: str = Field(
        description="The analysis: read `GET /api/v1/analyze/result/{session_id}` when finished"
    )
    status: AnalysisStatus = Field(description="`queued`, or the state of an idempotent replay")
    queue_position: int = Field(ge=0, description="Jobs ahead of this one")
    estimated_wait_s: float = Field(ge=0, description="Rough seconds until the result is ready")


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
