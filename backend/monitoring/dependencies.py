"""The drift monitor from the app state, and who may read it."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from backend.accounts.caller import load_user, resolve_caller, unauthenticated
from backend.accounts.dependencies import AuthCacheDep
from backend.errors import ForbiddenError
from backend.monitoring.service import DriftMonitor
from backend.web.deps import SessionDep, SettingsDep
from backend.web.state import provide

MonitorDep = Annotated[DriftMonitor, provide(DriftMonitor)]


async def require_operator(
    request: Request, settings: SettingsDep, session: SessionDep, cache: AuthCacheDep
) -> None:
    """Development: anyone. Production: the METRICS_TOKEN bearer, or a signed-in admin."""
    if not settings.is_production:
        return
    given = request.headers.get("authorization", "")
    token = settings.metrics_token or ""
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return
    bearer = given[7:].strip() if given.lower().startswith("bearer ") else None
    caller = await resolve_caller(
        session, settings, bearer=bearer, api_key=request.headers.get("x-api-key"), cache=cache
    )
    if caller.user_id is None:
        raise unauthenticated()
    if caller.scopes is not None:
        raise ForbiddenError(
            "API keys cannot read the drift monitor; use an admin's sign-in or METRICS_TOKEN.",
            code="api_key_refused",
        )
    user = await load_user(session, caller)
    if not user.is_admin:
        raise ForbiddenError(
            "Only an administrator (or the METRICS_TOKEN bearer) may read the drift monitor.",
            code="admin_required",
        )


OperatorDep = Depends(require_operator)
