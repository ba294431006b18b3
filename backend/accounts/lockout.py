"""Brute-force protection that slows guessing without letting anyone lock the owner out.

Three counters of failed sign-ins, in the database (so every replica shares them):

- account + client address (`pair:`): ten failures lock that pair, with doubling back-off.
  The guesser is stopped; the owner, signing in from another address, is not.
- client address (`ip:`): fifty failures in an hour, over any accounts, lock the address
  (password spraying).
- account (`acct:`): never locks. Past ten failures from anywhere, every further attempt on
  the account (right or wrong, from any address) first waits a little longer, up to
  `ACCOUNT_SOFT.max_delay` — a distributed guesser is slowed, the owner only delayed.

The client address is the socket peer, or the hop TRUSTED_PROXIES vouches for (client_ip.py).
"""

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


@dataclass(frozen=True)
class SoftPolicy:
    after: int  # failures on the account (from anywhere) before attempts are delayed
    step_s: float  # each failure beyond `after` adds this much delay...
    max_delay_s: float  # ... up to this
    window: timedelta


# Module-level so operators and tests can see and tune them in one place.
PAIR_POLICY = Policy(10, timedelta(minutes=15), timedelta(hours=24), timedelta(hours=24))
ADDRESS_POLICY = Policy(50, timedelta(minutes=15), timedelta(hours=24), timedelta(hours=1))
ACCOUNT_SOFT = SoftPolicy(after=10, step_s=0.1, max_delay_s=2.0, window=timedelta(hours=1))
_ACCOUNT_COUNT = Policy(10**9, timedelta(0), timedelta(0), ACCOUNT_SOFT.window)  # counts only


def longest_window() -> timedelta:
    return max(PAIR_POLICY.window, ADDRESS_POLICY.window, ACCOUNT_SOFT.window)


def account_key(email: str) -> str:
    return "acct:" + email.strip().lower()[:390]


def address_key(ip: str) -> str:
    return "ip:" + ip[:390]


def pair_key(email: str, ip: str) -> str:
    return "pair:" + ip[:64] + "|" + email.strip().lower()[:320]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def ensure_not_locked(session: AsyncSession, *, email: str, ip: str) -> float:
    """Raise 429 with Retry-After while this address, or this address on this account, is
    locked. Otherwise the soft delay (seconds) the attempt must wait first (0 mostly)."""
    now = utcnow()
    rows = (
        await session.scalars(
            select(LoginThrottle).where(
                LoginThrottle.key.in_([pair_key(email, ip), address_key(ip), account_key(email)])
            )
        )
    ).all()
    waits = [
        (until - now).total_seconds()
        for row in rows
        if row.key != account_key(email)
        and (until := _aware(row.locked_until)) is not None
        and until > now
    ]
    if waits:
        retry = max(1, math.ceil(max(waits)))
        raise TooManyRequestsError(
            "Too many failed sign-in attempts from this address; try again later.",
            code="login_locked",
            headers={"Retry-After": str(retry)},
            extra={"retry_after_s": retry},
        )
    for row in rows:
        last = _aware(row.last_failure_at)
        if row.key == account_key(email) and last and now - last <= ACCOUNT_SOFT.window:
            beyond = row.failures - ACCOUNT_SOFT.after
            if beyond > 0:
                return float(min(ACCOUNT_SOFT.max_delay_s, beyond * ACCOUNT_SOFT.step_s))
    return 0.0


async def record_failure(session: AsyncSession, *, email: str, ip: str) -> None:
    """Count one failed sign-in against the pair, the address and the account (flushed)."""
    await _bump(session, pair_key(email, ip), PAIR_POLICY)
    await _bump(session, address_key(ip), ADDRESS_POLICY)
    await _bump(session, account_key(email), _ACCOUNT_COUNT)


async def record_success(session: AsyncSession, *, email: str, ip: str) -> None:
    # Only this pair is forgiven. The address counter is kept (one valid account must not reset
    # a password-spraying client), and so is the account's (another client may be guessing).
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == pair_key(email, ip)))


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
        if row.failures >= policy.threshold and policy.base_lock > timedelta(0):
            extra = row.failures - policy.threshold
            lock = min(policy.base_lock * (2 ** min(extra, 20)), policy.max_lock)
            row.locked_until = now + lock
        await session.flush()
        return
