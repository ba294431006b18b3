"""Dependencies every domain's router uses: settings, one DB session per request, client address.

Cheap dependencies are `async def`: a plain `def` costs a threadpool hop on every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.db.session import Database
from backend.web.client_ip import client_ip
from backend.web.state import provide

SettingsDep = Annotated[Settings, provide(Settings)]
DatabaseDep = Annotated[Database, provide(Database)]


async def get_session(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """The request's session; services only flush, this commits once or rolls back."""
    async with database.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_client_ip(request: Request, settings: SettingsDep) -> str:
    """The socket peer, or the right-most untrusted X-Forwarded-For hop behind TRUSTED_PROXIES."""
    return client_ip(request, settings.trusted_proxies)


ClientIP = Annotated[str, Depends(get_client_ip)]
