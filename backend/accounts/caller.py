"""Who is calling: resolve a bearer token or API key to a user, and decide the resource owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import anonymous
from backend.accounts.api_keys import authenticate_key, key_digest
from backend.accounts.auth_cache import AuthCache, Identity
from backend.accounts.scopes import required_scope
from backend.accounts.tokens import TokenClaims, decode_token, invalid_token
from backend.config import Settings
from backend.db.models import RefreshToken, User
from backend.errors import ForbiddenError, UnauthorizedError


@dataclass(frozen=True)
class Owner:
    """Who owns a resource: a user id, or the anonymous development owner."""

    user_id: str | None
    key: str

    @classmethod
    def anonymous(cls, anonymous_id: str | None = None) -> Owner:
        """An anonymous client's own owner key (`anon:<id>`); without an id the legacy shared
        key, which only maintenance code and tests use."""
        key = anonymous.owner_key(anonymous_id) if anonymous_id else "anonymous"
        return cls(user_id=None, key=key)


@dataclass(frozen=True)
class Caller:
    """The authenticated user's id (None: anonymous) and how they authenticated.

    Only the id: most routes need nothing more, and a verified credential is cached without a
    database read (auth_cache.py). Routes that need the account itself load it (`load_user`).
    """

    user_id: str | None
    via: Literal["token", "api_key", "anonymous"]
    scopes: frozenset[str] | None = None  # None: every scope (a user's own token)
    family_id: str | None = None  # refresh family behind an access token (for logout)
    api_key_id: str | None = None
    anonymous_id: str | None = None  # the anonymous client's own identity (anonymous.py)
    auth_time: datetime | None = None  # when a token caller last signed in

    @classmethod
    def anonymous(cls, anonymous_id: str | None = None) -> Caller:
        return cls(user_id=None, via="anonymous", anonymous_id=anonymous_id)


def auth_required(settings: Settings) -> bool:
    """Production always; elsewhere only when AUTH_REQUIRED=true (anonymous use otherwise)."""
    if settings.is_production:
        return True
    return bool(getattr(settings, "auth_required", False))


def unauthenticated() -> UnauthorizedError:
    return UnauthorizedError(
        "Sign in first: send `Authorization: Bearer <access token>` or `X-API-Key`.",
        code="not_authenticated",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def verify_access(session: AsyncSession, claims: TokenClaims) -> User:
    """The access token's user, if still active and its sign-in family is not revoked."""
    user = await session.get(User, claims.subject)
    if user is None or not user.is_active:
        raise invalid_token("The token's account no longer exists or is disabled.")
    # Logout and refresh-token replay revoke the whole family, access tokens included.
    revoked = await session.scalar(
        select(RefreshToken.jti)
        .where(RefreshToken.family_id == claims.family_id, RefreshToken.revoked_at.is_not(None))
        .limit(1)
    )
    if revoked is not None:
        raise invalid_token("This session was signed out.", "session_revoked")
    return user


async def resolve_caller(
    session: AsyncSession,
    settings: Settings,
    *,
    bearer: str | None,
    api_key: str | None,
    cache: AuthCache | None = None,
) -> Caller:
    """Credentials that are sent must be valid (401 otherwise); none sent: anonymous.

    With a cache, a credential verified within its TTL is not checked against the database
    again (the token's signature and expiry still are, on every request).
    """
    if bearer and api_key:
        raise UnauthorizedError(
            "Send either a bearer token or an API key, not both.", code="ambiguous_credentials"
        )
    cache = cache or AuthCache(ttl_s=0)
    if api_key:

        async def verify_key() -> Identity:
            user, key = await authenticate_key(session, api_key)
            return Identity(user.id, scopes=frozenset(key.scopes), api_key_id=key.id)

        identity = await cache.get_or_verify(("api_key", key_digest(api_key.strip())), verify_key)
        return Caller(
            user_id=identity.user_id,
            via="api_key",
            scopes=identity.scopes,
            api_key_id=identity.api_key_id,
        )
    if bearer:
        claims = cache.claims(bearer, lambda: decode_token(settings, bearer, expected="access"))

        async def verify_token() -> Identity:
            return Identity((await verify_access(session, claims)).id)

        key = ("token", claims.subject, claims.family_id)
        identity = await cache.get_or_verify(key, verify_token)
        return Caller(
            user_id=identity.user_id,
            via="token",
            family_id=claims.family_id,
            auth_time=claims.auth_time,
        )
    return Caller.anonymous()


async def load_user(session: AsyncSession, caller: Caller) -> User:
    """The caller's account, read now (401 when anonymous, gone or disabled)."""
    if caller.user_id is None:
        raise unauthenticated()
    user = await session.get(User, caller.user_id)
    if user is None or not user.is_active:
        raise invalid_token("The account no longer exists or is disabled.")
    return user


def owner_for(caller: Caller, settings: Settings, *, method: str, route_path: str) -> Owner:
    """The owner whose resources this request may touch; 401/403 when it may touch none."""
    if caller.user_id is None:
        if auth_required(settings) or caller.anonymous_id is None:
            raise unauthenticated()
        return Owner.anonymous(caller.anonymous_id)
    if caller.scopes is not None:
        check_scope(caller, required_scope(method, route_path))
    return Owner(user_id=caller.user_id, key=caller.user_id)


def check_scope(caller: Caller, scope: str | None) -> None:
    if caller.scopes is None:
        return
    if scope is None:
        raise ForbiddenError("API keys cannot be used for this operation.", code="api_key_refused")
    if scope not in caller.scopes:
        raise ForbiddenError(
            f"This API key lacks the `{scope}` scope.",
            code="insufficient_scope",
            extra={"required_scope": scope},
        )
