"""JSON Web Tokens (PyJWT): HS256 only, with exp/iat/jti/iss/aud and a `typ` claim."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt

from backend.config import Settings
from backend.db.base import utcnow
from backend.errors import UnauthorizedError

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]
_REQUIRED = ["exp", "iat", "jti", "iss", "aud", "sub", "typ"]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    jti: str
    family_id: str
    token_type: TokenType
    expires_at: datetime
    auth_time: datetime  # when the user last proved who they are (carried across refreshes)


def encode_token(
    settings: Settings,
    *,
    subject: str,
    kind: TokenType,
    family_id: str,
    ttl: timedelta,
    now: datetime | None = None,
    auth_time: datetime | None = None,
) -> IssuedToken:
    now = now or utcnow()
    jti = uuid.uuid4().hex
    expires_at = now + ttl
    payload: dict[str, Any] = {
        "sub": subject,
        "typ": kind,
        "fam": family_id,
        "jti": jti,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "auth_time": int((auth_time or now).timestamp()),
    }
    token = jwt.encode(payload, settings.jwt_secret_key, algorithm=ALGORITHM)
    return IssuedToken(token=token, jti=jti, expires_at=expires_at)


def decode_token(settings: Settings, token: str, *, expected: TokenType) -> TokenClaims:
    """Verify signature, algorithm, expiry, issuer, audience and type; 401 otherwise."""
    try:
        # The algorithm list is pinned: a token claiming `none` or RS256 is refused outright.
        payload = jwt.decode(
            token,
            settings.jwt_secret_key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": _REQUIRED},
            leeway=5,
        )
    except jwt.ExpiredSignatureError as exc:
        raise invalid_token("The token has expired; sign in again.", "token_expired") from exc
    except jwt.PyJWTError as exc:
        raise invalid_token("The token is invalid.") from exc
    if payload.get("typ") != expected:
        raise invalid_token(f"An {expected} token is required here.")
    subject, jti, family = payload.get("sub"), payload.get("jti"), payload.get("fam")
    if not all(isinstance(v, str) and v for v in (subject, jti, family)):
        raise invalid_token("The token is invalid.")
    return TokenClaims(
        subject=str(subject),
        jti=str(jti),
        family_id=str(family),
        token_type=expected,
        expires_at=datetime.fromtimestamp(int(payload["exp"]), tz=utcnow().tzinfo),
        # Tokens from before the claim existed count from their own issue time.
        auth_time=datetime.fromtimestamp(
            int(payload.get("auth_time") or payload["iat"]), tz=utcnow().tzinfo
        ),
    )


def invalid_token(message: str, code: str = "invalid_token") -> UnauthorizedError:
    return UnauthorizedError(message, code=code, headers={"WWW-Authenticate": "Bearer"})
