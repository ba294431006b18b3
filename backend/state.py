"""The typed application state built by the lifespan and handed out through dependencies."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.analysis.result_cache import ResultCache
from backend.auth.audit_spool import AuditSpool
from backend.auth.auth_cache import AuthCache
from backend.config import Settings
from backend.jobs.base import JobQueue
from backend.jobs.store import JobStore
from backend.ml.registry import ModelRegistry
from backend.storage import ObjectStorage

if TYPE_CHECKING:
    from backend.analysis.pipeline import Pipeline


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    storage: ObjectStorage
    registry: ModelRegistry
    pipeline: Pipeline
    queue: JobQueue
    jobs: JobStore
    started_at: float = field(default_factory=time.time)
    results: ResultCache = field(default_factory=ResultCache)
    auth_cache: AuthCache = field(default_factory=lambda: AuthCache(ttl_s=0))
    audit: AuditSpool | None = None  # read events: on local disk, then chained (audit_spool.py)
    extras: dict[str, Any] = field(default_factory=dict)
