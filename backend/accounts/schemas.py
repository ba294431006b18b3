"""Request/response models of the account, token, API-key and history endpoints."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backend.accounts.scopes import Scope
from backend.contract import UtcDatetime

_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251})\.[A-Za-z]{2,63}$")


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value) or ".." in value.split("@", 1)[1]:
        raise ValueError("must be an email address such as name@example.org")
    return value.lower()


def _printable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no name, email or secret needs control characters.
    if any(ord(ch) < 0x20 and ch not in "\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


NoControl = AfterValidator(_printable)
Email = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_email)]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Annotated[
        str, Field(min_length=1, max_length=1024, description="At least 10 characters"), NoControl
    ]
    full_name: Annotated[str, Field(max_length=200), NoControl] = ""


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(min_length=1, max_length=320), NoControl]
    password: Annotated[str, Field(min_length=1, max_length=1024), NoControl]


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Annotated[str, Field(min_length=1, max_length=4096), NoControl]


class CodeExchangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=256), NoControl]


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 scheme name
    expires_in: int = Field(description="Access-token lifetime in seconds")


class OneTimeCodeOut(BaseModel):
    code: str = Field(description="POST it to /api/v1/auth/google/exchange within expires_in")
    expires_in: int


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    full_name: str
    created_at: UtcDatetime
    has_password: bool
    google_linked: bool
    email_verified: bool


class RegisterAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str = Field(
        default="If this address can be registered, a confirmation link has been sent to it. "
        "Sign in with the password you chose.",
        description="The same answer whether or not the address already had an account",
    )


class VerifiedOut(BaseModel):
    status: Literal["verified"] = "verified"
    email: str


class ApiKeyCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=100), NoControl] = ""
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The full key; shown only now, store it safely")


class AnonymousIdentityOut(BaseModel):
    anonymous_id: str = Field(description="Send it back as the header named in `header`")
    header: str
