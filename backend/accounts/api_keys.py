"""Per-user API keys: scoped, stored as a hash with a public prefix, shown once, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.auth_cache import credentials_revoked
from backend.accounts.scopes import ALL_SCOPES
from backend.audit.service import record_audit
from backend.db.base import new_id, utcnow
from backend.db.models import ApiKey, User
from backend.errors import NotFoundError, UnauthorizedError, UnprocessableError

KEY_MARK = "msk"
MAX_KEYS_PER_USER = 20
# Writing last_used_at on every call would make each request a write; once a minute is enough.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    row: ApiKey
    secret: str  # the full key; returned to the client once and never stored


def key_digest(key: str) -> str:
    # The key carries 256 random bits, so a fast hash is enough (no salt or stretching needed).
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    parts = key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARK or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def create_key(
    session: AsyncSession, user: User, *, name: str, scopes: list[str], client_ip: str | None = None
) -> CreatedKey:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown or not scopes:
        raise UnprocessableError(
            f"scopes must be a non-empty subset of: {', '.join(ALL_SCOPES)}.",
            code="invalid_scopes",
        )
    active = (
        await session.scalars(
            select(ApiKey.id).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        )
    ).all()
    if len(active) >= MAX_KEYS_PER_USER:
        raise UnprocessableError(
            f"You already have {MAX_KEYS_PER_USER} active API keys; revoke one first.",
            code="too_many_api_keys",
        )
    prefix = secrets.token_hex(6)
    secret = f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=new_id(),
        user_id=user.id,
        name=name.strip(),
        prefix=prefix,
        key_hash=key_digest(secret),
        scopes=sorted(set(scopes)),
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await record_audit(
        session,
        actor_id=user.id,
        action="api_key.created",
        resource_type="api_key",
        resource_id=row.id,
        client_ip=client_ip,
        details={"prefix": prefix, "scopes": row.scopes},
    )
    return CreatedKey(row=row, secret=secret)


async def list_keys(session: AsyncSession, user: User) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at.desc())
    )
    return list(rows.all())


async def revoke_key(
    session: AsyncSession, user: User, key_id: str, *, client_ip: str | None = None
) -> ApiKey:
    row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user.id))
    if row is None:
        raise NotFoundError(f"No API key {key_id}.", code="api_key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        credentials_revoked(session, user.id)
        await session.flush()
        await record_audit(
            session,
            actor_id=user.id,
            action="api_key.revoked",
            resource_type="api_key",
            resource_id=row.id,
            client_ip=client_ip,
            details={"prefix": row.prefix},
        )
    return row


async def authenticate_key(session: AsyncSession, key: str) -> tuple[User, ApiKey]:
    """The active user and key for an `X-API-Key` value; 401 for anything else."""
    invalid = UnauthorizedError(
        "The API key is invalid or revoked.",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "ApiKey"},
    )
    parts = _split(key)
    if parts is None:
        raise invalid
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[0]))
    if row is None or row.revoked_at is not None:
        raise invalid
    if not hmac.compare_digest(row.key_hash, key_digest(key.strip())):
        raise invalid
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise invalid
    now = utcnow()
    last = row.last_used_at
    if (
        last is None
        or now - (last if last.tzinfo else last.replace(tzinfo=now.tzinfo)) > _TOUCH_EVERY
    ):
        row.last_used_at = now
        await session.flush()
    return user, row
