"""Recently verified credentials, per process, so a signed-in read does not query the database.

Verifying an access token costs two queries (the user is active, the token's sign-in family is
not revoked) and an API key two more (the key, its user): ≈ 2–3 ms of the event loop per
request, which more than doubled a cached result read (1.3 → 3.4 ms) and, under the 200
connection load test, queued requests for seconds. A credential verified here is trusted for
`AUTH_CACHE_TTL_S` (5 s) without asking again.

What that costs: a revocation made by *another* process (a logout, a revoked API key, an erased
account on another replica) takes effect here within the TTL. Revocations made in this process
take effect at once: every revoking transaction calls `credentials_revoked(session, user_id)`,
which drops that user's entries in every cache of the process when it is called and again when
the transaction commits (so an entry re-verified in between, against the not yet committed
state, is dropped too). Other users' entries stay: one sign-out does not send every signed-in
request of the process to the database. Without a user id, every entry is dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

_generation = 0  # bumped by a process-wide revocation; older entries are stale
_REVOKED = "medsight_credentials_revoked"
_REVOKED_USERS = "medsight_credentials_revoked_users"
_clock = 0  # a revocation counter; an entry stamped before a user's last revocation is stale
_user_revoked_at: dict[str, int] = {}
_MAX_TRACKED_USERS = 100_000


@dataclass(frozen=True)
class Identity:
    """What a verified credential proves."""

    user_id: str
    scopes: frozenset[str] | None = None  # API keys only
    api_key_id: str | None = None


class AuthCache:
    """Credential key → Identity, for ttl_s seconds; at most max_entries (oldest dropped)."""

    def __init__(self, ttl_s: float, *, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, ...], tuple[Identity, float, int, int]] = (
            OrderedDict()
        )

    def get(self, key: tuple[str, ...]) -> Identity | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        identity, expires, generation, stamp = entry
        if (
            generation != _generation
            or _user_revoked_at.get(identity.user_id, -1) >= stamp
            or time.monotonic() >= expires
        ):
            del self._entries[key]
            return None
        return identity

    async def get_or_verify(
        self, key: tuple[str, ...], verify: Callable[[], Awaitable[Identity]]
    ) -> Identity:
        """The cached identity, or verify() now (its 401 propagates) and remember the result."""
        identity = self.get(key)
        if identity is None:
            # A revocation committed while verify() reads the database must still win: the
            # entry is stamped with the generation and clock from before the read.
            generation, stamp = _generation, _clock
            identity = await verify()
            self.put(key, identity, generation=generation, stamp=stamp)
        return identity

    def put(
        self,
        key: tuple[str, ...],
        identity: Identity,
        *,
        generation: int | None = None,
        stamp: int | None = None,
    ) -> None:
        if self.ttl_s <= 0:
            return
        self._entries[key] = (
            identity,
            time.monotonic() + self.ttl_s,
            _generation if generation is None else generation,
            _clock if stamp is None else stamp,
        )
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _revoke(user_ids: set[str] | None) -> None:
    global _generation, _clock
    if user_ids is None or len(_user_revoked_at) > _MAX_TRACKED_USERS:
        _generation += 1
        _user_revoked_at.clear()
        return
    _clock += 1
    for user_id in user_ids:
        _user_revoked_at[user_id] = _clock


def credentials_revoked(session: AsyncSession, user_id: str | None = None) -> None:
    """Call inside any transaction that revokes a credential or disables an account.

    `user_id`: whose credentials; None drops every cached credential of the process.
    """
    info = session.sync_session.info
    if user_id is None:
        _revoke(None)
        info[_REVOKED] = True
        return
    _revoke({user_id})
    info.setdefault(_REVOKED_USERS, set()).add(user_id)


@event.listens_for(Session, "after_commit")
def _revoked_on_commit(session: Session) -> None:
    if session.info.pop(_REVOKED, False):
        _revoke(None)
    users = session.info.pop(_REVOKED_USERS, None)
    if users:
        _revoke(set(users))
