"""Revoking every credential of one account: its sign-in families and its API keys."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.auth_cache import credentials_revoked
from backend.db.base import utcnow
from backend.db.models import ApiKey, RefreshToken


async def revoke_all_credentials(session: AsyncSession, user_id: str) -> None:
    """Every refresh family (so its access tokens too) and every API key of `user_id`."""
    credentials_revoked(session, user_id)
    now = utcnow()
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
