"""The PACS outbox rows: creation with the analysis, compare-and-set claims, outcomes.

A row is claimable when its analysis has finished and it is `pending`/`retrying` and due, or
`sending` under an expired lease (its sender died or hung). Every outcome is written only by the
claimant that still holds the row, so a sender that lost its lease cannot overwrite a newer one.
Re-sending is harmless: the instances' UIDs are fixed at creation, and a PACS stores an instance
it already has once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contract import FINAL_STATUSES
from backend.db.base import new_id, utcnow
from backend.db.models import Analysis, PacsDelivery
from backend.db.session import transaction

WAITING = ("pending", "retrying")


# MedSight's namespace for name-based UIDs (fixed forever: changing it changes every UID).
_UID_NAMESPACE = uuid.UUID("6f2d1c9e-4b7a-5e21-9a3c-d1c003d51947")


def derived_uid(analysis_id: str, what: str) -> str:
    """A UID fixed by the analysis and the object (2.25 + a name-based UUID, PS3.5 B.2): the
    same on every build, so a retry re-sends identical instances."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, f'{analysis_id}/{what}').int}"


def new_delivery(analysis_id: str, study_instance_uid: str) -> PacsDelivery:
    """The outbox row of a new analysis, due as soon as the analysis finishes."""
    return PacsDelivery(
        id=new_id(),
        analysis_id=analysis_id,
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
        study_instance_uid=study_instance_uid,
        sr_series_uid=derived_uid(analysis_id, "sr-series"),
        sr_instance_uid=derived_uid(analysis_id, "sr-instance"),
        image_series_uid=derived_uid(analysis_id, "heatmap-series"),
        image_instance_uid=derived_uid(analysis_id, "heatmap-instance"),
    )


@dataclass(frozen=True)
class Claim:
    """A delivery this sender holds until `lease_until`."""

    id: str
    analysis_id: str
    attempts: int
    study_instance_uid: str
    sr_series_uid: str
    sr_instance_uid: str
    image_series_uid: str
    image_instance_uid: str


def _claimable(now: datetime) -> object:
    return or_(
        and_(PacsDelivery.status.in_(WAITING), PacsDelivery.next_attempt_at <= now),
        and_(PacsDelivery.status == "sending", PacsDelivery.lease_until < now),
    )


class Outbox:
    def __init__(self, factory: async_sessionmaker[AsyncSession], sender_id: str) -> None:
        self.factory = factory
        self.sender_id = sender_id

    async def claim(self, limit: int, lease: timedelta) -> list[Claim]:
        """Up to `limit` due deliveries of finished analyses, oldest due first."""
        now = utcnow()
        async with transaction(self.factory) as session:
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            candidates = (
                select(PacsDelivery.id)
                .join(Analysis, Analysis.id == PacsDelivery.analysis_id)
                .where(_claimable(now), Analysis.status.in_(FINAL_STATUSES))  # type: ignore[arg-type]
                .order_by(PacsDelivery.next_attempt_at)
                .limit(limit)
            )
            if dialect == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True, of=PacsDelivery)
            ids = list((await session.execute(candidates)).scalars())
            claims = []
            for delivery_id in ids:
                row = (
                    await session.execute(
                        update(PacsDelivery)
                        .where(PacsDelivery.id == delivery_id, _claimable(now))  # type: ignore[arg-type]
                        .values(
                            status="sending",
                            claimed_by=self.sender_id,
                            lease_until=now + lease,
                            attempts=PacsDelivery.attempts + 1,
                        )
                        .returning(
                            PacsDelivery.id,
                            PacsDelivery.analysis_id,
                            PacsDelivery.attempts,
                            PacsDelivery.study_instance_uid,
                            PacsDelivery.sr_series_uid,
                            PacsDelivery.sr_instance_uid,
                            PacsDelivery.image_series_uid,
                            PacsDelivery.image_instance_uid,
                        )
                        .execution_options(synchronize_session=False)
                    )
                ).first()
                if row is not None:
                    claims.append(Claim(**row._asdict()))
            return claims

    async def _finish(self, claim: Claim, **values: object) -> bool:
        """Write an outcome if this sender still holds the claim; False when it lost it."""
        async with transaction(self.factory) as session:
            result = await session.execute(
                update(PacsDelivery)
                .where(
                    PacsDelivery.id == claim.id,
                    PacsDelivery.status == "sending",
                    PacsDelivery.claimed_by == self.sender_id,
                    PacsDelivery.attempts == claim.attempts,
                )
                .values(lease_until=None, **values)
            )
        return bool(getattr(result, "rowcount", 0))

    async def delivered(self, claim: Claim) -> bool:
        return await self._finish(claim, status="delivered", delivered_at=utcnow(), last_error=None)

    async def retry(self, claim: Claim, reason: str, at: datetime) -> bool:
        return await self._finish(
            claim, status="retrying", next_attempt_at=at, last_error=reason[:2000]
        )

    async def give_up(self, claim: Claim, reason: str, *, status: str = "failed") -> bool:
        """`failed` (could not be delivered) or `skipped` (nothing to deliver)."""
        return await self._finish(claim, status=status, last_error=reason[:2000])
