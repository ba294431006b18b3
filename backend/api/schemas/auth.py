"""Request/response models of the account, token, API-key and history endpoints."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backend.auth.scopes import Scope

_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251})\.[A-Za-z]{2,63}$")


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value) or ".." in value.split("@", 1)[1]:
        raise ValueError("must be an email address such as name@example.org")
    return value.lower()


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC, so say so on the wire.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


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


class SessionItemOut(BaseModel):
    session_id: str
    created_at: UtcDatetime
    status: str
    overall_status: str | None
    anomaly_score: float | None
    risk_level: str | None
    patient_ref: str | None


class TrendPointOut(BaseModel):
    session_id: str
    created_at: UtcDatetime
    anomaly_score: float
    risk_level: str | None


class RiskTrendOut(BaseModel):
    direction: Literal["improving", "worsening", "stable", "insufficient_data"]
    points: list[TrendPointOut]


class SessionsPageOut(BaseModel):
    items: list[SessionItemOut]
    total: int = Field(ge=0)
    limit: int
    offset: int
    trend: RiskTrendOut
