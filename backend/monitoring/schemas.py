"""What `GET /api/v1/monitoring/drift` answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DriftStatus = Literal["ok", "warning", "drift"]


class DriftReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="shipped:<weights hash> or site:<calibration file hash>")
    kind: Literal["shipped", "site"]
    source: str = Field(description="Which images define the reference")
    n_normal: int
    n_abnormal: int


class DriftThresholdsOut(BaseModel):
    warning: float
    drift: float


class DriftFeature(BaseModel):
    statistic: float = Field(description="sqrt(n_eff) x KS distance to the fitted mixture")
    window_mean: float
    reference_mean: float


class DriftReport(BaseModel):
    """The drift check of the last `window` scored analyses against the reference."""

    status: DriftStatus = Field(
        description="ok; warning or drift when the statistic passes its threshold. Below "
        "min_n the status is ok and the statistic is null (too few analyses to test)."
    )
    statistic: float | None = Field(
        description="The largest per-feature sqrt(n_eff) x KS distance to the best-fitting "
        "mixture of reference normals and abnormals"
    )
    n: int = Field(description="Analyses in the window (scored chest X-rays)")
    window: int = Field(description="DRIFT_WINDOW: the most recent analyses compared")
    min_n: int = Field(description="DRIFT_MIN_N: fewer analyses than this are not tested")
    reference: DriftReference | None = Field(
        description="What the window is compared with; null when the model has no reference"
    )
    thresholds: DriftThresholdsOut
    normal_fraction: float | None = Field(
        default=None, description="Share of normals in the best-fitting reference mixture"
    )
    features: dict[str, DriftFeature] = Field(default_factory=dict)
    outside_population: float | None = Field(
        default=None, description="Share of the window's images outside the reference population"
    )
    not_chest_xray: int = Field(
        default=0, description="Images in the same period refused as not chest X-rays"
    )
    detail: str = ""
    checked_at: datetime
