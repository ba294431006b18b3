"""The signed-in user's own data: analysis history with its risk trend, and erasure."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.auth_cache import credentials_revoked
from backend.analysis.service import delete_analyses
from backend.audit.service import record_audit
from backend.db.models import Analysis, ApiKey, ChatMessage, OAuthCode, RefreshToken, User
from backend.storage import ObjectStorage

logger = logging.getLogger(__name__)

TREND_POINTS = 10
# A change in anomaly score smaller than this between the last two results counts as stable.
TREND_TOLERANCE = 0.05
Direction = Literal["improving", "worsening", "stable", "insufficient_data"]


@dataclass(frozen=True)
class TrendPoint:
    session_id: str
    created_at: datetime
    anomaly_score: float
    risk_level: str | None


@dataclass(frozen=True)
class History:
    items: list[Analysis]
    total: int
    trend: list[TrendPoint]
    direction: Direction


def _mine(user: User) -> ColumnElement[bool]:
    return or_(Analysis.owner_id == user.id, Analysis.owner_key == user.id)


async def history(session: AsyncSession, user: User, *, limit: int, offset: int) -> History:
    """Newest first; the trend runs oldest to newest over the last finished, scored analyses."""
    total = await session.scalar(select(func.count()).select_from(Analysis).where(_mine(user)))
    items = (
        await session.scalars(
            select(Analysis)
            .where(_mine(user))
            .order_by(Analysis.created_at.desc(), Analysis.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    scored = (
        await session.execute(
            select(Analysis.id, Analysis.created_at, Analysis.anomaly_score, Analysis.risk_level)
            .where(_mine(user), Analysis.anomaly_score.is_not(None))
            .order_by(Analysis.created_at.desc())
            .limit(TREND_POINTS)
        )
    ).all()
    trend = [
        TrendPoint(
            session_id=r[0], created_at=r[1], anomaly_score=float(r[2] or 0.0), risk_level=r[3]
        )
        for r in reversed(scored)
    ]
    return History(
        items=list(items), total=int(total or 0), trend=trend, direction=_direction(trend)
    )


def _direction(trend: list[TrendPoint]) -> Direction:
    if len(trend) < 2:
        return "insufficient_data"
    change = trend[-1].anomaly_score - trend[-2].anomaly_score
    if change > TREND_TOLERANCE:
        return "worsening"
    if change < -TREND_TOLERANCE:
        return "improving"
    return "stable"


async def erase_user(
    session: AsyncSession, storage: ObjectStorage, user: User, *, client_ip: str
) -> int:
    """Delete the user's uploads, results, chats, keys and tokens, then the user (flushed)."""
    credentials_revoked(session, user.id)
    analyses = (
        await session.execute(select(Analysis.id, Analysis.image_key).where(_mine(user)))
    ).all()
    ids = await delete_analyses(session, storage, [(row[0], row[1]) for row in analyses])
    await session.execute(
        delete(ChatMessage).where(
            or_(ChatMessage.owner_id == user.id, ChatMessage.owner_key == user.id)
        )
    )
    for model in (ApiKey, RefreshToken, OAuthCode):
        await session.execute(delete(model).where(model.user_id == user.id))
    await record_audit(
        session,
        actor_id=user.id,
        action="user.deleted",
        resource_type="user",
        resource_id=user.id,
        client_ip=client_ip,
        details={"analyses": len(ids)},
    )
    await session.delete(user)
    await session.flush()
    return len(ids)
