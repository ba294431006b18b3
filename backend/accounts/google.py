"""Google sign-in (OpenID Connect, authorization code + PKCE + state + nonce) with Authlib."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.starlette_client import OAuth
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.revocation import revoke_all_credentials
from backend.audit.service import record_audit
from backend.config import Settings
from backend.db.base import new_id, utcnow
from backend.db.models import OAuthState, User
from backend.errors import (
    AppError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableError,
)

logger = logging.getLogger(__name__)

GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
STATE_TTL = timedelta(minutes=10)
STATE_COOKIE = "medsight_oauth_state"
# Binds the one-time code to the browser that started sign-in: the code can be exchanged only
# together with this cookie, which never appears in a URL (so a code that leaks through a
# redirect, a log or a Referer is useless elsewhere).
BINDING_COOKIE = "medsight_oauth_binding"
COOKIE_PATH = "/api/v1/auth/google"


@dataclass(frozen=True)
class GoogleIdentity:
    sub: str
    email: str | None
    email_verified: bool
    name: str


def is_configured(settings: Settings) -> bool:
    return bool(settings.google_client_id and settings.google_client_secret)


class GoogleClients:
    """The app's Authlib client, built on first use (its discovery document is cached in it)."""

    def __init__(self) -> None:
        self._client: Any = None

    def get(self, settings: Settings) -> Any:
        if not is_configured(settings):
            raise NotFoundError(
                "This server offers no Google sign-in (GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET "
                "are not set).",
                code="oauth_not_configured",
            )
        if self._client is None:
            self._client = build_client(settings)
        return self._client


def build_client(settings: Settings) -> Any:
    """An Authlib client; metadata and JWKS are fetched from the discovery document and cached."""
    oauth = OAuth()
    return oauth.register(
        "google",
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        server_metadata_url=settings.google_discovery_url or GOOGLE_DISCOVERY_URL,
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )


def check_return_to(settings: Settings, return_to: str | None) -> str | None:
    """Only an origin listed exactly in ALLOWED_ORIGINS may receive the code.

    ALLOWED_ORIGIN_REGEX is deliberately not consulted: a pattern such as `https://.*\.hf\.space`
    matches every tenant of a shared host, and the one-time code would go to any of them.
    Without `return_to`, sign-in returns to FRONTEND_URL when it is set (its origin is allowed).
    """
    if not return_to:
        return settings.frontend_url
    parts = urlsplit(return_to)
    origin = f"{parts.scheme}://{parts.netloc}"
    allowed = (
        parts.scheme in {"http", "https"}
        and bool(parts.netloc)
        and origin in settings.allowed_origins
    )
    if not allowed or parts.username or parts.password:
        raise UnprocessableError(
            "return_to must be a URL on an origin listed exactly in ALLOWED_ORIGINS.",
            code="invalid_return_to",
        )
    return return_to


def browser_binding(settings: Settings, state: str) -> str:
    """The secret the initiating browser holds (in a cookie) for this sign-in's `state`."""
    return hmac.new(
        settings.secret_key.encode("utf-8"), b"oauth-binding:" + state.encode("utf-8"), "sha256"
    ).hexdigest()


def bound_code_hash(code: str, binding: str) -> str:
    """The stored form of a one-time code: only code + the browser's binding finds the row."""
    return hashlib.sha256(f"{binding}:{code}".encode()).hexdigest()


async def start(
    session: AsyncSession, client: Any, *, redirect_uri: str, return_to: str | None
) -> tuple[str, str]:
    """Create the authorization URL; persist state, PKCE verifier and nonce. -> (url, state)."""
    try:
        rv = await client.create_authorization_url(redirect_uri)
    except (httpx.HTTPError, OAuthError, RuntimeError, ValueError) as exc:
        logger.warning("google discovery failed", exc_info=True)
        raise ServiceUnavailableError(
            "Google sign-in is unavailable right now; try again later.", code="oauth_unavailable"
        ) from exc
    now = utcnow()
    await session.execute(delete(OAuthState).where(OAuthState.expires_at < now))
    session.add(
        OAuthState(
            state=rv["state"],
            code_verifier=rv["code_verifier"],
            nonce=rv["nonce"],
            redirect_uri=redirect_uri,
            return_to=return_to,
            expires_at=now + STATE_TTL,
            created_at=now,
        )
    )
    await session.flush()
    return str(rv["url"]), str(rv["state"])


async def finish(
    session: AsyncSession,
    client: Any,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    cookie_state: str | None,
) -> tuple[GoogleIdentity, OAuthState]:
    """Check state (one use, bound to this browser), redeem the code with PKCE, verify id_token."""
    if error:
        raise BadRequestError(
            "Google sign-in was cancelled or refused.", code="oauth_denied", extra={"error": error}
        )
    if not state or not code:
        raise BadRequestError("The sign-in response is missing state or code.", code="oauth_bad")
    row = await session.get(OAuthState, state)
    if row is None:
        raise BadRequestError("The sign-in link is invalid or was used.", code="invalid_state")
    await session.delete(row)
    await session.flush()
    now = utcnow()
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    if expires <= now:
        raise BadRequestError("The sign-in link expired; start again.", code="invalid_state")
    if not cookie_state or not hmac.compare_digest(cookie_state, state):
        # Binds the callback to the browser that started it (prevents login CSRF).
        raise BadRequestError(
            "This sign-in was started in another browser; start again.", code="invalid_state"
        )
    try:
        token = await client.fetch_access_token(
            redirect_uri=row.redirect_uri, code=code, code_verifier=row.code_verifier
        )
    except OAuthError as exc:
        raise UnauthorizedError(
            "Google refused the sign-in code.", code="oauth_code_refused"
        ) from exc
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            "Google sign-in is unavailable right now.", code="oauth_unavailable"
        ) from exc
    try:
        info = await client.parse_id_token(token, nonce=row.nonce)
    except AppError:
        raise
    except Exception as exc:  # joserfc/authlib raise many error types for a bad id_token
        logger.warning("id_token rejected", exc_info=True)
        raise UnauthorizedError(
            "Google's identity token did not verify.", code="invalid_id_token"
        ) from exc
    if info is None or not info.get("sub"):
        raise UnauthorizedError("Google returned no identity token.", code="invalid_id_token")
    return (
        GoogleIdentity(
            sub=str(info["sub"]),
            email=str(info["email"]).lower() if info.get("email") else None,
            email_verified=bool(info.get("email_verified")),
            name=str(info.get("name") or ""),
        ),
        row,
    )


async def user_for_identity(
    session: AsyncSession, identity: GoogleIdentity, *, client_ip: str
) -> User:
    """The linked user; else the account with this (verified) email; else a new one.

    A password account is linked only if its owner proved the address (verification link).
    An unverified one may have been registered by anyone who typed the address (the "pre-account
    takeover"): Google proving the address makes the Google user its owner, so the unproved
    password is removed and every session and API key made with it is revoked before linking.
    """
    user = await session.scalar(select(User).where(User.google_sub == identity.sub))
    if user is not None:
        if not user.is_active:
            raise UnauthorizedError("This account is disabled.", code="account_disabled")
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
        return user
    if not identity.email or not identity.email_verified:
        raise UnauthorizedError(
            "Google did not confirm an email address for this account.", code="email_unverified"
        )
    user = await session.scalar(select(User).where(User.email == identity.email))
    if user is not None:
        if user.google_sub is not None or not user.is_active:
            raise ConflictError("This email belongs to another account.", code="email_taken")
        if user.email_verified_at is None and user.password_hash is not None:
            user.password_hash = None
            await revoke_all_credentials(session, user.id)
            await record_audit(
                session,
                actor_id=user.id,
                action="auth.unverified_password_removed",
                resource_type="user",
                resource_id=user.id,
                client_ip=client_ip,
                details={"reason": "google proved the address"},
            )
        user.google_sub = identity.sub
        user.email_verified_at = user.email_verified_at or utcnow()
        await session.flush()
        return user
    user = User(
        id=new_id(),
        email=identity.email,
        full_name=identity.name[:200],
        password_hash=None,
        google_sub=identity.sub,
        email_verified_at=utcnow(),
        created_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise ConflictError("This account was just created; sign in again.") from exc
    await record_audit(
        session,
        actor_id=user.id,
        action="auth.register",
        resource_type="user",
        resource_id=user.id,
        client_ip=client_ip,
        details={"method": "google"},
    )
    return user
