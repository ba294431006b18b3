"""Accounts: register, sign in (with lockout), token pairs, refresh rotation, sign out."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import lockout, passwords, verification
from backend.accounts.auth_cache import credentials_revoked
from backend.accounts.google import bound_code_hash
from backend.accounts.mailer import Mailer, Message
from backend.accounts.tokens import decode_token, encode_token, invalid_token
from backend.audit.service import record_audit
from backend.config import Settings
from backend.db.base import new_id, utcnow
from backend.db.models import OAuthCode, RefreshToken, User
from backend.errors import BadRequestError, UnauthorizedError

OAUTH_CODE_TTL = timedelta(seconds=120)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def register(
    session: AsyncSession,
    settings: Settings,
    mailer: Mailer,
    *,
    email: str,
    password: str,
    full_name: str,
    client_ip: str,
    base_url: str,
) -> None:
    """Create an unverified account and mail its verification link; same answer either way.

    An address that already has an account gets a notice instead (nothing about the account
    changes), so the response never tells a caller whether an address is registered. The
    password is hashed in both cases so the timing does not tell either.
    """
    email = normalise_email(email)
    passwords.check_password_policy(password, email=email)
    password_hash = await anyio.to_thread.run_sync(passwords.hash_password, password)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        await _existing_account_notice(mailer, email)
        return
    user = User(
        id=new_id(),
        email=email,
        full_name=full_name.strip(),
        password_hash=password_hash,
        created_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:  # two registrations raced: the other one created it
        await _existing_account_notice(mailer, email)
        return
    await record_audit(
        session,
        actor_id=user.id,
        action="auth.register",
        resource_type="user",
        resource_id=user.id,
        client_ip=client_ip,
        details={"method": "password"},
    )
    await send_verification(session, settings, mailer, user, base_url=base_url)


async def _existing_account_notice(mailer: Mailer, email: str) -> None:
    await mailer.send(
        Message(
            to=email,
            subject="MedSight: someone tried to register this address",
            body="An account for this address already exists, so nothing was changed. If this "
            "was you, sign in instead. If it was not, you can ignore this message.",
        )
    )


async def send_verification(
    session: AsyncSession, settings: Settings, mailer: Mailer, user: User, *, base_url: str
) -> None:
    """Mail a fresh verification link for the account's address (and its current password)."""
    await session.flush()
    url = verification.link(
        settings.public_base_url or base_url, verification.make_token(settings, user)
    )
    await mailer.send(
        Message(
            to=user.email,
            subject="MedSight: confirm your email address",
            body=f"Open this link within 48 hours to confirm that this address is yours: {url}",
            link=url,
        )
    )


async def verify_email(
    session: AsyncSession, settings: Settings, *, token: str, client_ip: str
) -> User:
    """Mark the address proved when the link matches the account as it is now; 400 otherwise."""
    claims = verification.read_token(settings, token)
    user = await session.get(User, str(claims.get("u", "")))
    if user is None or not user.is_active or not verification.matches(claims, user):
        raise BadRequestError(
            "This verification link is invalid or expired; request a new one.",
            code="invalid_link",
        )
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        await record_audit(
            session,
            actor_id=user.id,
            action="auth.email_verified",
            resource_type="user",
            resource_id=user.id,
            client_ip=client_ip,
            details={},
        )
    return user


async def login(
    session: AsyncSession, settings: Settings, *, email: str, password: str, client_ip: str
) -> TokenPair:
    """Check the password under the account and address lockouts; 401 or 429 otherwise."""
    email = normalise_email(email)
    delay = await lockout.ensure_not_locked(session, email=email, ip=client_ip)
    if delay > 0:
        await anyio.sleep(delay)  # an account under attack: every attempt on it is slowed
    user = await session.scalar(select(User).where(User.email == email))
    ok = await anyio.to_thread.run_sync(
        passwords.verify_password, user.password_hash if user else None, password
    )
    if not ok or user is None or not user.is_active:
        await lockout.record_failure(session, email=email, ip=client_ip)
        await record_audit(
            session,
            actor_id=user.id if user else None,
            action="auth.login_failed",
            resource_type="user",
            resource_id=user.id if user else None,
            client_ip=client_ip,
            details={"email_sha256": hashlib.sha256(email.encode()).hexdigest()[:16]},
        )
        # The failure must outlive the error response (the request session rolls back).
        await session.commit()
        raise UnauthorizedError("Wrong email or password.", code="invalid_credentials")
    await lockout.record_success(session, email=email, ip=client_ip)
    if passwords.needs_rehash(user.password_hash or ""):
        user.password_hash = await anyio.to_thread.run_sync(passwords.hash_password, password)
    await record_audit(
        session,
        actor_id=user.id,
        action="auth.login",
        resource_type="user",
        resource_id=user.id,
        client_ip=client_ip,
        details={"method": "password"},
    )
    return await issue_pair(session, settings, user)


async def issue_pair(
    session: AsyncSession,
    settings: Settings,
    user: User,
    *,
    family_id: str | None = None,
    auth_time: datetime | None = None,
) -> TokenPair:
    """A new access + refresh token; a new family unless rotating within one.

    `auth_time` is when the user signed in (a rotation keeps the family's): it bounds the
    family's whole life and tells sensitive routes how recently the user proved who they are.
    """
    family = family_id or new_id()
    auth_time = auth_time or utcnow()
    access_ttl = timedelta(minutes=settings.access_token_ttl_minutes)
    access = encode_token(
        settings,
        subject=user.id,
        kind="access",
        family_id=family,
        ttl=access_ttl,
        auth_time=auth_time,
    )
    refresh = encode_token(
        settings,
        subject=user.id,
        kind="refresh",
        family_id=family,
        ttl=timedelta(days=settings.refresh_token_ttl_days),
        auth_time=auth_time,
    )
    session.add(
        RefreshToken(
            jti=refresh.jti,
            user_id=user.id,
            family_id=family,
            expires_at=refresh.expires_at,
            created_at=utcnow(),
        )
    )
    await session.flush()
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=int(access_ttl.total_seconds()),
    )


async def revoke_family(session: AsyncSession, family_id: str, user_id: str) -> None:
    credentials_revoked(session, user_id)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def refresh(
    session: AsyncSession, settings: Settings, *, token: str, client_ip: str
) -> TokenPair:
    """Rotate: the presented token is spent; presenting a spent token revokes its family."""
    claims = decode_token(settings, token, expected="refresh")
    row = await session.get(RefreshToken, claims.jti)
    if row is None or row.user_id != claims.subject or row.family_id != claims.family_id:
        raise invalid_token("The refresh token is invalid.")
    if row.revoked_at is not None:
        raise invalid_token("The refresh token was revoked; sign in again.", "token_revoked")
    # Atomic spend: of two concurrent uses, exactly one wins; the other is a replay.
    spent = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.jti == row.jti,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=utcnow())
    )
    if getattr(spent, "rowcount", 0) != 1:
        await revoke_family(session, row.family_id, row.user_id)
        await record_audit(
            session,
            actor_id=row.user_id,
            action="auth.refresh_reuse",
            resource_type="token_family",
            resource_id=row.family_id,
            client_ip=client_ip,
            details={"jti": row.jti},
        )
        await session.commit()  # the revocation must survive the 401
        raise invalid_token(
            "This refresh token was already used; every session it belongs to is now signed "
            "out. Sign in again.",
            "refresh_token_reused",
        )
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise invalid_token("The account no longer exists or is disabled.")
    if utcnow() - claims.auth_time > timedelta(days=settings.refresh_family_max_days):
        # However often it is refreshed, a sign-in does not live forever.
        await revoke_family(session, row.family_id, row.user_id)
        await session.commit()
        raise invalid_token("This sign-in is too old; sign in again.", "session_expired")
    return await issue_pair(
        session, settings, user, family_id=row.family_id, auth_time=claims.auth_time
    )


async def logout(
    session: AsyncSession, *, user: User, family_id: str | None, client_ip: str
) -> None:
    if family_id:
        await revoke_family(session, family_id, user.id)
    await record_audit(
        session,
        actor_id=user.id,
        action="auth.logout",
        resource_type="token_family",
        resource_id=family_id,
        client_ip=client_ip,
        details={},
    )


async def create_one_time_code(session: AsyncSession, user: User, *, binding: str) -> str:
    """A short-lived single-use code standing in for tokens (so tokens never go in a URL).

    It is stored hashed together with `binding`, the secret in the initiating browser's cookie:
    the code alone, wherever it leaks to, finds no row.
    """
    code = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        OAuthCode(
            code_hash=bound_code_hash(code, binding),
            user_id=user.id,
            expires_at=now + OAUTH_CODE_TTL,
            created_at=now,
        )
    )
    await session.flush()
    return code


async def exchange_one_time_code(
    session: AsyncSession, settings: Settings, *, code: str, binding: str | None, client_ip: str
) -> TokenPair:
    now = utcnow()
    invalid = UnauthorizedError(
        "The sign-in code is invalid or expired, or this is not the browser that started the "
        "sign-in.",
        code="invalid_code",
    )
    if not binding:
        raise invalid
    row = await session.get(OAuthCode, bound_code_hash(code, binding))
    if row is None:
        raise invalid
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    spent = await session.execute(
        update(OAuthCode)
        .where(OAuthCode.code_hash == row.code_hash, OAuthCode.used_at.is_(None))
        .values(used_at=now)
    )
    if getattr(spent, "rowcount", 0) != 1 or expires <= now:
        raise invalid
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise invalid
    await record_audit(
        session,
        actor_id=user.id,
        action="auth.login",
        resource_type="user",
        resource_id=user.id,
        client_ip=client_ip,
        details={"method": "google"},
    )
    return await issue_pair(session, settings, user)
