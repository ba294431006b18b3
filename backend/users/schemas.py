"""Response models of the user's own data: history with its risk trend."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from backend.contract import AnalysisStatus, OverallStatus, RiskLevel, UtcDatetime


class SessionItemOut(BaseModel):
    session_id: str = Field(description="The analysis id (GET /api/v1/analyze/result/{id})")
    created_at: UtcDatetime = Field(description="When it was submitted")
    status: AnalysisStatus
    overall_status: OverallStatus | None = Field(description="None until finished")
    anomaly_score: float | None = Field(description="Vision score 0-100, if scored")
    risk_level: RiskLevel | None = Field(description="The analysis's final risk, if any")
    patient_ref: str | None = Field(description="Your reference, as submitted")


class TrendPointOut(BaseModel):
    session_id: str = Field(description="The analysis id")
    created_at: UtcDatetime = Field(description="When it was submitted")
    anomaly_score: float = Field(description="Vision score 0-100")
    risk_level: RiskLevel | None = Field(description="Its final risk")


class RiskTrendOut(BaseModel):
    direction: Literal["improving", "worsening", "stable", "insufficient_data"] = Field(
        description="How the scores moved over these analyses (fewer than 2: insufficient_data)"
    )
    points: list[TrendPointOut] = Field(description="Scored analyses, oldest first")


class SessionsPageOut(BaseModel):
    items: list[SessionItemOut] = Field(description="This page, newest first")
    total: int = Field(ge=0, description="All of the user's analyses")
    limit: int = Field(description="Page size asked for")
    offset: int = Field(description="Items skipped")
    trend: RiskTrendOut
