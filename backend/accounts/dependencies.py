"""Who is calling: the dependencies routers use to authenticate and to scope resources."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from backend.accounts import anonymous
from backend.accounts.auth_cache import AuthCache
from backend.accounts.caller import (
    Caller,
    Owner,
    auth_required,
    check_scope,
    load_user,
    owner_for,
    resolve_caller,
    unauthenticated,
)
from backend.config import Settings
from backend.db.base import utcnow
from backend.db.models import User
from backend.errors import UnauthorizedError
from backend.web.deps import SessionDep, SettingsDep
from backend.web.state import provide

AuthCacheDep = Annotated[AuthCache, provide(AuthCache)]

# auto_error=False: a missing credential is decided by `get_owner` (anonymous outside production).
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_caller(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cache: AuthCacheDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Caller:
    """The authenticated caller; invalid credentials are a 401 even where anonymous is allowed.

    Without credentials, where anonymous use is allowed, the caller is the anonymous client's
    own identity: from the `X-Anonymous-Id` header (401 if forged), else the cookie, else a new
    one issued with this response.
    """
    caller = await resolve_caller(session, settings, bearer=bearer, api_key=api_key, cache=cache)
    if caller.user_id is None and not auth_required(settings):
        caller = Caller.anonymous(anonymous_identity(request, settings))
    request.state.caller = caller
    return caller


def anonymous_identity(request: Request, settings: Settings) -> str:
    """The anonymous client's id (header, then cookie), or a new one issued now."""
    header = request.headers.get(anonymous.HEADER)
    if header is not None:
        anon_id = anonymous.verify(settings, header)
        if anon_id is None:
            raise UnauthorizedError(
                f"The {anonymous.HEADER} header is not an identity this server issued; get one "
                "from POST /api/v1/auth/anonymous.",
                code="invalid_anonymous_id",
            )
        return anon_id
    anon_id = anonymous.verify(settings, request.cookies.get(anonymous.COOKIE))
    if anon_id is None:
        anon_id, token = anonymous.issue(settings)
        anonymous.remember_issued(request.state, token)
    return anon_id


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_owner(request: Request, caller: CallerDep, settings: SettingsDep) -> Owner:
    """The caller as a resource owner: `Owner(user.id, user.id)`, or anonymous where allowed.

    Production (or AUTH_REQUIRED=true) answers 401 without credentials; API keys need the scope
    that `backend.accounts.scopes.required_scope` names for the route.
    """
    route_path = getattr(request.scope.get("route"), "path", request.url.path)
    return owner_for(caller, settings, method=request.method, route_path=route_path)


OwnerDep = Annotated[Owner, Depends(get_owner)]


async def get_current_user(caller: CallerDep, session: SessionDep) -> User:
    """The signed-in user (bearer token or API key), read now; 401 when anonymous."""
    return await load_user(session, caller)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_token_user(caller: CallerDep, session: SessionDep) -> User:
    """The signed-in user by bearer token; API keys are refused (they cannot manage the account)."""
    if caller.user_id is None:
        raise unauthenticated()
    check_scope(caller, None)
    return await load_user(session, caller)


TokenUser = Annotated[User, Depends(get_token_user)]


def require_scope(scope: str) -> Any:
    """Route dependency: `dependencies=[require_scope("reports")]` (tokens have every scope)."""

    async def dependency(caller: CallerDep) -> None:
        if caller.user_id is None:
            raise unauthenticated()
        check_scope(caller, scope)

    result: DependsParam = Depends(dependency)
    return result


async def get_recent_user(caller: CallerDep, session: SessionDep, settings: SettingsDep) -> User:
    """The signed-in user, by a bearer token from a sign-in at most REAUTH_MAX_AGE_MINUTES old.

    Refreshing does not renew it: the user must type the password (or go through Google) again.
    """
    user = await get_token_user(caller, session)
    limit = timedelta(minutes=settings.reauth_max_age_minutes)
    if caller.auth_time is None or utcnow() - caller.auth_time > limit:
        raise UnauthorizedError(
            f"Sign in again (within {settings.reauth_max_age_minutes:g} minutes) to do this.",
            code="reauthentication_required",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_user_authentication"'},
        )
    return user


RecentUser = Annotated[User, Depends(get_recent_user)]
