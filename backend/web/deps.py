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
    """The request's session; services only flush, this commits once or rolls back.

    A request that never used its session (a read served from the caches) skips the commit and
    the close: each is a greenlet round trip, together more than the rest of such a read.
    """
    session = database.sessionmaker()
    try:
        yield session
        if session.in_transaction():
            await session.commit()
    except BaseException:
        if session.in_transaction():
            await session.rollback()
        raise
    finally:
        if session.in_transaction() or session.sync_session.identity_map:
            await session.close()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_client_ip(request: Request, settings: SettingsDep) -> str:
    """The socket peer, or the right-most untrusted X-Forwarded-For hop behind TRUSTED_PROXIES."""
    return client_ip(request, settings.trusted_proxies)


ClientIP = Annotated[str, Depends(get_client_ip)]
