"""Request/response models of the account, token, API-key and history endpoints."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backend.auth.scopes import Scope

_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251})\.[A-Za-z]{2,63}$")


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value) or ".." in value.split("@", 1)[1]:
        raise ValueError("must be an email address such as name@example.org")
    return value.lower()


Email = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_email)]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: str = Field(min_length=1, max_length=1024, description="At least 10 characters")
    full_name: str = Field(default="", max_length=200)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class CodeExchangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=256)


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
    created_at: datetime
    has_password: bool
    google_linked: bool


class ApiKeyCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The full key; shown only now, store it safely")


class SessionItemOut(BaseModel):
    session_id: str
    created_at: datetime
    status: str
    overall_status: str | None
    anomaly_score: float | None
    risk_level: str | None
    patient_ref: str | None


class TrendPointOut(BaseModel):
    session_id: str
    created_at: datetime
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
