"""Recently verified credentials, per process, so a signed-in read does not query the database.

Verifying an access token costs two queries (the user is active, the token's sign-in family is
not revoked) and an API key two more (the key, its user): ≈ 2–3 ms of the event loop per
request, which more than doubled a cached result read (1.3 → 3.4 ms) and, under the 200
connection load test, queued requests for seconds. A credential verified here is trusted for
`AUTH_CACHE_TTL_S` (5 s) without asking again. Concurrent requests with the same credential
that find no entry wait for one verification instead of each running their own (at 200
connections every entry's expiry otherwise sent a burst of identical queries).

A bearer token's signature is checked once per token string: its decoded claims are kept until
the token expires (decoding is a pure function of the token and the process's key; the database
checks above are what revocation needs, and they keep their TTL).

What that costs: a revocation made by *another* process (a logout, a revoked API key, an erased
account on another replica) takes effect here within the TTL. Revocations made in this process
take effect at once: every revoking transaction calls `credentials_revoked(session, user_id)`,
which drops that user's entries (every entry when no user is named) when it is called and again
when that transaction commits (so an entry re-verified in between, against the not yet
committed state, is dropped too).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from backend.web.single_flight import SingleFlight

if TYPE_CHECKING:
    from backend.accounts.tokens import TokenClaims

_generation = 0  # bumped by every revocation of every credential; older entries are stale
_user_generation: dict[str, int] = {}  # bumped by a revocation of one user's credentials
_revocations = 0  # bumped by every revocation, whoever's (verifications racing one)
_REVOKED = "medsight_credentials_revoked"


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
        self._flights: SingleFlight[tuple[str, ...], Identity] = SingleFlight()
        self._claims: OrderedDict[str, tuple[TokenClaims, float]] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> Identity | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        identity, expires, generation, user_generation = entry
        if (
            generation != _generation
            or user_generation != _user_generation.get(identity.user_id, 0)
            or time.monotonic() >= expires
        ):
            del self._entries[key]
            return None
        return identity

    async def get_or_verify(
        self, key: tuple[str, ...], verify: Callable[[], Awaitable[Identity]]
    ) -> Identity:
        """The cached identity, or verify() now (its 401 propagates) and remember the result.

        While one request verifies a credential, others presenting it wait for that answer.
        """
        identity = self.get(key)
        if identity is not None:
            return identity

        async def verify_and_keep() -> Identity:
            # A revocation committed while verify() reads the database must still win:
            # nothing is stored when any revocation happened meanwhile.
            revocations, generation = _revocations, _generation
            verified = await verify()
            if revocations == _revocations:
                self.put(key, verified, generation=generation)
            return verified

        return await self._flights.run(key, verify_and_keep)

    def put(
        self, key: tuple[str, ...], identity: Identity, *, generation: int | None = None
    ) -> None:
        if self.ttl_s <= 0:
            return
        stamp = _generation if generation is None else generation
        user_stamp = _user_generation.get(identity.user_id, 0)
        self._entries[key] = (identity, time.monotonic() + self.ttl_s, stamp, user_stamp)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def peek_claims(self, token: str) -> TokenClaims | None:
        """The claims `claims()` decoded for this token and keeps (unexpired), else None."""
        entry = self._claims.get(token)
        if entry is None or time.time() >= entry[1]:
            return None
        return entry[0]

    def claims(self, token: str, decode: Callable[[], TokenClaims]) -> TokenClaims:
        """A bearer token's verified claims: decode() once per token, kept until it expires."""
        entry = self._claims.get(token)
        if entry is not None:
            if time.time() < entry[1]:
                return entry[0]
            del self._claims[token]  # expired: decode() says so, with its own leeway
        claims = decode()
        if self.ttl_s > 0:
            self._claims[token] = (claims, claims.expires_at.timestamp())
            while len(self._claims) > self.max_entries:
                self._claims.popitem(last=False)
        return claims


def credentials_revoked(session: AsyncSession, user_id: str | None = None) -> None:
    """Call inside any transaction that revokes a credential or disables an account.

    With `user_id`, only that user's cached credentials are dropped; without, everyone's.
    """
    _revoke(user_id)
    pending: set[str | None] = session.sync_session.info.setdefault(_REVOKED, set())
    pending.add(user_id)


def _revoke(user_id: str | None) -> None:
    global _generation, _revocations
    _revocations += 1
    if user_id is None:
        _generation += 1
    else:
        _user_generation[user_id] = _user_generation.get(user_id, 0) + 1


@event.listens_for(Session, "after_commit")
def _revoked_on_commit(session: Session) -> None:
    for user_id in session.info.pop(_REVOKED, ()):
        _revoke(user_id)
