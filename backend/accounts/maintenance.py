"""Scheduled upkeep of auth state: drop expired tokens, codes, sign-in states and old counters."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts import lockout
from backend.db.base import utcnow
from backend.db.models import LoginThrottle, OAuthCode, OAuthState, RefreshToken
from backend.db.session import transaction


async def purge_auth_state(session: AsyncSession) -> dict[str, int]:
    """Delete what can no longer be used; returns counts per table (flushed, not committed)."""
    now = utcnow()
    # A rotated or revoked refresh token is kept until it expires: a replay must still be seen.
    stale_counters = now - lockout.longest_window()
    statements = {
        "refresh_tokens": delete(RefreshToken).where(RefreshToken.expires_at < now),
        "oauth_codes": delete(OAuthCode).where(OAuthCode.expires_at < now - timedelta(hours=1)),
        "oauth_states": delete(OAuthState).where(OAuthState.expires_at < now),
        "login_throttles": delete(LoginThrottle).where(
            and_(
                LoginThrottle.last_failure_at < stale_counters,
                or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
            )
        ),
    }
    counts = {}
    for name, statement in statements.items():
        result = await session.execute(statement)
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts


async def purge_expired_auth_state(factory: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Scheduler entry point: `purge_expired_auth_state(state.sessionmaker)`."""
    async with transaction(factory) as session:
        return await purge_auth_state(session)
