"""Email verification: a signed, expiring link that proves the owner reads the address.

The link carries the user id, the address and a fingerprint of the password hash current when
it was sent, signed with SECRET_KEY (HMAC-SHA256). It verifies only that address for that
password: if the password changed (or Google removed an unverified one) since, the link is dead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

from backend.config import Settings
from backend.db.models import User
from backend.errors import BadRequestError

VERIFY_TTL = timedelta(hours=48)
VERIFY_PATH = "/api/v1/auth/verify"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _fingerprint(user: User) -> str:
    return hashlib.sha256((user.password_hash or "").encode("utf-8")).hexdigest()[:32]


def _sign(settings: Settings, payload: bytes) -> str:
    key = settings.secret_key.encode("utf-8")
    return _b64(hmac.new(key, b"email-verify:" + payload, "sha256").digest())


def make_token(settings: Settings, user: User, *, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    body = {
        "u": user.id,
        "e": user.email,
        "p": _fingerprint(user),
        "x": issued + int(VERIFY_TTL.total_seconds()),
    }
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return f"{_b64(payload)}.{_sign(settings, payload)}"


def read_token(settings: Settings, token: str) -> dict[str, str | int]:
    """The token's claims when its signature holds and it has not expired; 400 otherwise."""
    bad = BadRequestError(
        "This verification link is invalid or expired; request a new one.", code="invalid_link"
    )
    try:
        encoded, signature = token.split(".", 1)
        payload = _unb64(encoded)
    except (ValueError, TypeError) as exc:
        raise bad from exc
    if not hmac.compare_digest(signature, _sign(settings, payload)):
        raise bad
    try:
        claims = json.loads(payload)
    except ValueError as exc:
        raise bad from exc
    if not isinstance(claims, dict) or int(claims.get("x", 0)) < time.time():
        raise bad
    return claims


def matches(claims: dict[str, str | int], user: User) -> bool:
    """The link was issued for this account, this address and its current password."""
    return (
        claims.get("u") == user.id
        and claims.get("e") == user.email
        and hmac.compare_digest(str(claims.get("p", "")), _fingerprint(user))
    )


def link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{VERIFY_PATH}?token={token}"
