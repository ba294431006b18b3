"""Response models of the user's own data: history with its risk trend."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from backend.contract import AnalysisStatus, OverallStatus, RiskLevel, UtcDatetime


class SessionItemOut(BaseModel):
    session_id: str
    created_at: UtcDatetime
    status: AnalysisStatus
    overall_status: OverallStatus | None
    anomaly_score: float | None
    risk_level: RiskLevel | None
    patient_ref: str | None


class TrendPointOut(BaseModel):
    session_id: str
    created_at: UtcDatetime
    anomaly_score: float
    risk_level: RiskLevel | None


class RiskTrendOut(BaseModel):
    direction: Literal["improving", "worsening", "stable", "insufficient_data"]
    points: list[TrendPointOut]


class SessionsPageOut(BaseModel):
    items: list[SessionItemOut]
    total: int = Field(ge=0)
    limit: int
    offset: int
    trend: RiskTrendOut
