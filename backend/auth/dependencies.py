"""Auth dependencies for routers (the caller-resolving ones live in `backend.api.deps`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from backend.api.deps import (
    CallerDep,
    CurrentUser,
    OwnerDep,
    SettingsDep,
    TokenUser,
    get_caller,
    get_current_user,
    get_owner,
    get_token_user,
    require_scope,
)
from backend.auth.client_ip import client_ip
from backend.auth.ratelimit import rate_limit


async def get_client_ip(request: Request, settings: SettingsDep) -> str:
    """The socket peer, or the right-most untrusted X-Forwarded-For hop behind TRUSTED_PROXIES."""
    return client_ip(request, settings.trusted_proxies)


ClientIP = Annotated[str, Depends(get_client_ip)]

__all__ = [
    "CallerDep",
    "ClientIP",
    "CurrentUser",
    "OwnerDep",
    "TokenUser",
    "get_caller",
    "get_client_ip",
    "get_current_user",
    "get_owner",
    "get_token_user",
    "rate_limit",
    "require_scope",
]
