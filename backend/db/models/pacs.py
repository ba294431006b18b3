"""The PACS outbox: one row per analysis whose result goes back to the PACS it came from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, TimestampMixin, new_id


class PacsDelivery(TimestampMixin, Base):
    """Delivery of one analysis's SR and heatmap series to the PACS by STOW-RS.

    Created with the analysis (same transaction) when an instance arrives by STOW-RS and a PACS
    is configured, so nothing is lost between submission and delivery. The UIDs of what will be
    sent are fixed here: a retry re-sends the same instances, which the PACS stores once.
    """

    __tablename__ = "pacs_deliveries"
    __table_args__ = (Index("ix_pacs_deliveries_status_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    analysis_id: Mapped[str] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), unique=True
    )
    # pending | sending | retrying | delivered | failed | skipped
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    # A claim: who is sending and until when; an expired lease may be taken over.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    sr_series_uid: Mapped[str] = mapped_column(String(64))
    sr_instance_uid: Mapped[str] = mapped_column(String(64))
    image_series_uid: Mapped[str] = mapped_column(String(64))
    image_instance_uid: Mapped[str] = mapped_column(String(64))
