"""FastAPI dependencies: state, settings, one DB session per request (commit/rollback here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from backend.analysis.service import Owner
from backend.config import Settings
from backend.ml.registry import ModelRegistry
from backend.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.medsight
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_registry(state: StateDep) -> ModelRegistry:
    return state.registry


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]


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


def get_owner() -> Owner:
    """The caller as a resource owner (anonymous until authentication is configured)."""
    return Owner.anonymous()


OwnerDep = Annotated[Owner, Depends(get_owner)]
