"""Drift monitoring: one observation per finished analysis that the vision model scored or gated."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, TimestampMixin


class DriftObservation(TimestampMixin, Base):
    """What the drift monitor compares with the reference: the score and input statistics.

    No patient data: numbers about the image only. Deleted with its analysis (erasure,
    retention), so the rolling window never outlives the results it summarises.
    """

    __tablename__ = "drift_observations"
    __table_args__ = (Index("ix_drift_observations_reference_id", "reference_id", "id"),)

    # Autoincrement: the window is "the last N" in insertion order, cheap on both databases.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    analysis_id: Mapped[str] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), unique=True
    )
    # What the window is compared with: "shipped:<weights sha256[:16]>" or "site:<calibration
    # file sha256[:16]>"; a new calibration starts a new window.
    reference_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    is_chest_xray: Mapped[bool] = mapped_column(Boolean)
    outside_population: Mapped[bool] = mapped_column(Boolean, default=False)
    # None when the image was not scored (not a chest X-ray).
    score: Mapped[float | None] = mapped_column()
    feature_distance: Mapped[float] = mapped_column()
    mean_intensity: Mapped[float] = mapped_column()
    std_intensity: Mapped[float] = mapped_column()
