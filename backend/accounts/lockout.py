"""Brute-force protection: failed sign-ins lock an account and a client address, in the database."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.base import utcnow
from backend.db.models import LoginThrottle
from backend.errors import TooManyRequestsError


@dataclass(frozen=True)
class Policy:
    threshold: int  # failures that trigger the first lock
    base_lock: timedelta  # the first lock; each further failure while counting doubles it
    max_lock: timedelta
    window: timedelta  # failures older than this (and no active lock) are forgotten


# Module-level so operators and tests can see and tune them in one place.
ACCOUNT_POLICY = Policy(10, timedelta(minutes=15), timedelta(hours=24), timedelta(hours=24))
ADDRESS_POLICY = Policy(50, timedelta(minutes=15), timedelta(hours=24), timedelta(hours=1))


def account_key(email: str) -> str:
    return "acct:" + email.strip().lower()[:390]


def address_key(ip: str) -> str:
    return "ip:" + ip[:390]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def ensure_not_locked(session: AsyncSession, *, email: str, ip: str) -> None:
    """Raise 429 with Retry-After while the account or the client address is locked."""
    now = utcnow()
    rows = (
        await session.scalars(
            select(LoginThrottle).where(
                LoginThrottle.key.in_([account_key(email), address_key(ip)])
            )
        )
    ).all()
    waits = [
        (until - now).total_seconds()
        for row in rows
        if (until := _aware(row.locked_until)) is not None and until > now
    ]
    if waits:
        retry = max(1, math.ceil(max(waits)))
        raise TooManyRequestsError(
            "Too many failed sign-in attempts; try again later.",
            code="login_locked",
            headers={"Retry-After": str(retry)},
            extra={"retry_after_s": retry},
        )


async def record_failure(session: AsyncSession, *, email: str, ip: str) -> None:
    """Count one failed sign-in against the account and the address (flushed)."""
    await _bump(session, account_key(email), ACCOUNT_POLICY)
    await _bump(session, address_key(ip), ADDRESS_POLICY)


async def record_success(session: AsyncSession, *, email: str) -> None:
    # The address counter is kept: one valid account must not reset a password-spraying client.
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == account_key(email)))


async def _bump(session: AsyncSession, key: str, policy: Policy) -> None:
    now = utcnow()
    for _ in range(3):
        row = await session.scalar(
            select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
        )
        if row is None:
            try:
                async with session.begin_nested():
                    session.add(LoginThrottle(key=key, failures=0, last_failure_at=None))
            except IntegrityError:
                continue  # another request created it first: lock and update that row
            continue
        last = _aware(row.last_failure_at)
        locked = _aware(row.locked_until)
        if last is not None and now - last > policy.window and (locked is None or locked <= now):
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        if row.failures >= policy.threshold:
            extra = row.failures - policy.threshold
            lock = min(policy.base_lock * (2 ** min(extra, 20)), policy.max_lock)
            row.locked_until = now + lock
        await session.flush()
        return
