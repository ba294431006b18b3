"""FastAPI dependencies: state, settings, one DB session per request (commit/rollback here).

Cheap dependencies are `async def`: a plain `def` costs a threadpool hop on every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from backend.analysis.service import Owner
from backend.auth.caller import (
    Caller,
    check_scope,
    load_user,
    owner_for,
    resolve_caller,
    unauthenticated,
)
from backend.config import Settings
from backend.db.models import User
from backend.state import AppState


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.medsight
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """The request's session; services only flush, this commits once or rolls back."""
    async with state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session)]


# auto_error=False: a missing credential is decided by `get_owner` (anonymous outside production).
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_caller(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Caller:
    """The authenticated caller; invalid credentials are a 401 even where anonymous is allowed."""
    cache = request.app.state.medsight.auth_cache
    caller = await resolve_caller(session, settings, bearer=bearer, api_key=api_key, cache=cache)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_owner(request: Request, caller: CallerDep, settings: SettingsDep) -> Owner:
    """The caller as a resource owner: `Owner(user.id, user.id)`, or anonymous where allowed.

    Production (or AUTH_REQUIRED=true) answers 401 without credentials; API keys need the scope
    that `backend.auth.scopes.required_scope` names for the route.
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

    def dependency(caller: CallerDep) -> None:
        if caller.user_id is None:
            raise unauthenticated()
        check_scope(caller, scope)

    result: DependsParam = Depends(dependency)
    return result
