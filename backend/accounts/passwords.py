"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.errors import UnprocessableError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

# OWASP-recommended argon2id floor (19 MiB, t=2, p=1). Tests may swap `hasher` for lighter
# parameters; verification reads the parameters from each stored hash, so both keep working.
hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)

# A short list of the passwords most often found in breaches (10+ characters, lower-cased).
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "12345678910",
        "123456789a",
        "0123456789",
        "0987654321",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "qwerty1234",
        "qwerty12345",
        "qwerty123456",
        "asdfghjkl1",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou123",
        "abcdefghij",
        "abc1234567",
        "aaaaaaaaaa",
        "letmein123",
        "welcome123",
        "administrator",
        "admin12345",
        "changeme123",
        "football123",
        "baseball123",
        "superman123",
        "sunshine123",
        "princess123",
        "trustno1234",
        "medsight123",
        "medsight2026",
        "doctor12345",
        "hospital123",
    }
)


def check_password_policy(password: str, *, email: str | None = None) -> None:
    """Raise a 422 naming the rule a new password breaks."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UnprocessableError(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.",
            code="password_too_short",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UnprocessableError(
            f"The password must be at most {MAX_PASSWORD_LENGTH} characters long.",
            code="password_too_long",
        )
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 3:
        raise UnprocessableError(
            "This password is too common; choose a longer passphrase of your own.",
            code="password_too_common",
        )
    if email and lowered == email.lower():
        raise UnprocessableError(
            "The password must not be your email address.", code="password_is_email"
        )


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing or malformed hash never matches."""
    if not password_hash:
        # Spend the same time as a real check so response times do not reveal accounts.
        _burn_time(password)
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher.check_needs_rehash(password_hash)


_DUMMY_HASH: str | None = None


def _burn_time(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hasher.hash("dummy-password-for-timing")
    try:
        hasher.verify(_DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        pass
