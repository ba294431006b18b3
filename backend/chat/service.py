"""Chat domain: the engine's lazy construction, the corpus's first build, conversation storage."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.caller import Owner
from backend.config import Settings
from backend.db.models import Analysis, ChatMessage
from backend.db.session import Database, transaction
from backend.errors import NotFoundError
from backend.ml.catalog import EMBEDDER
from backend.ml.rag.types import PastAnalysis
from backend.ml.registry import ModelRegistry
from backend.process import settle_heap

if TYPE_CHECKING:
    from backend.ml.rag import ChatEngine

logger = logging.getLogger(__name__)

HISTORY_TURNS = 6
RETRIEVER_RETRY_S = 30.0


class ChatService:
    """Owns the chat engine (built once), its retriever and the corpus's first build."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        database: Database,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.database = database
        self.limiter = limiter
        self.corpus_status: dict[str, Any] | None = None
        self._engine: ChatEngine | None = None
        self._lock = asyncio.Lock()
        self._next_probe = 0.0

    async def engine(self) -> ChatEngine:
        """The chat engine; its retriever is attached as soon as the corpus exists.

        While the corpus is missing or still building, the engine answers questions about the
        analysis and refuses knowledge questions it cannot ground (weak retrieval).
        """
        engine = self._engine
        if engine is not None and engine.retriever is not None:
            return engine
        async with self._lock:
            if self._engine is None:
                from backend.ml.rag import ChatEngine

                settings = self.settings
                self._engine = ChatEngine(
                    None,
                    gemini_api_key=settings.gemini_api_key,
                    gemini_base_url=settings.gemini_base_url,
                    gemini_model=settings.gemini_model,
                    gemini_timeout_s=settings.gemini_timeout_s,
                    local_llm_path=settings.local_llm_path,
                    local_tier=settings.chat_local_tier,
                    local_llm_threads=settings.local_llm_threads,
                    limiter=self.limiter,
                )
                settle_heap()  # the engine's objects live as long as the process
            if self._engine.retriever is None:
                await self._attach_retriever(self._engine)
            return self._engine

    async def warm_local_tier(self) -> None:
        """Load the local model at start-up so the first answer does not wait for it."""
        engine = await self.engine()
        local = getattr(engine, "local", None)
        if local is not None and local.available():
            loaded = await anyio.to_thread.run_sync(local.preload)
            logger.info("local chat model %s", "ready" if loaded else "unavailable")
            settle_heap()

    async def _attach_retriever(self, engine: ChatEngine) -> None:
        """Open the retriever if the corpus exists (blocking work runs in a thread)."""
        from backend.ml.rag import corpus_exists, open_retriever

        settings = self.settings
        chroma_dir = settings.chroma_dir
        assert chroma_dir is not None  # noqa: S101
        if (self.corpus_status or {}).get("state") in {"checking", "building"}:
            return  # the start-up task attaches it when the corpus is ready
        # Opening the store to look costs milliseconds: without a corpus, look again at most
        # every RETRIEVER_RETRY_S, not on every chat request.
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + RETRIEVER_RETRY_S
        if not await anyio.to_thread.run_sync(corpus_exists, chroma_dir, settings.chroma_url):
            return
        embedder = await self.registry.get(EMBEDDER)
        engine.retriever = await anyio.to_thread.run_sync(
            lambda: open_retriever(chroma_dir, embedder, chroma_url=settings.chroma_url)
        )
        settle_heap()  # the open store lives as long as the process

    async def build_corpus_if_missing(self) -> None:
        """First start: fill the corpus in a thread while the service keeps answering."""
        from backend.ml.rag import build_corpus, corpus_exists

        settings = self.settings
        chroma_dir = settings.chroma_dir
        assert chroma_dir is not None  # noqa: S101
        status: dict[str, Any] = {"ok": True, "state": "checking"}
        self.corpus_status = status
        try:
            if await anyio.to_thread.run_sync(corpus_exists, chroma_dir, settings.chroma_url):
                status["state"] = "ready"
                return
            if not settings.corpus_data_dir.exists():
                status["state"] = "missing"
                status["detail"] = f"corpus source {settings.corpus_data_dir} not found"
                return
            status["state"] = "building"
            embedder = await self.registry.get(EMBEDDER)

            def progress(done: int, total: int) -> None:
                status["progress"] = f"{done}/{total}"

            stats = await anyio.to_thread.run_sync(
                lambda: build_corpus(
                    settings.corpus_data_dir, chroma_dir, embedder, progress=progress
                )
            )
            status.update(state="ready", stats=stats)
            engine = self._engine
            if engine is not None and engine.retriever is None:
                self._next_probe = 0.0
                await self._attach_retriever(engine)
        except Exception as exc:  # noqa: BLE001 - chat degrades; the service stays up
            logger.exception("corpus build failed")
            status.update(state="failed", detail=type(exc).__name__)

    async def save_turn(
        self,
        *,
        owner: Owner,
        conversation_id: str,
        analysis_id: str | None,
        question: str,
        answer: str,
        tier: str,
        sources: list[dict[str, Any]],
    ) -> None:
        """Persist one completed question/answer pair."""
        async with transaction(self.database.sessionmaker) as session:
            common = {
                "conversation_id": conversation_id,
                "analysis_id": analysis_id,
                "owner_id": owner.user_id,
                "owner_key": owner.key,
            }
            session.add(ChatMessage(role="user", content=question, **common))
            session.add(
                ChatMessage(role="assistant", content=answer, tier=tier, sources=sources, **common)
            )


EARLIER_ANALYSES = 10


async def earlier_analyses(session: AsyncSession, owner: Owner) -> list[PastAnalysis]:
    """The owner's last finished, scored analyses, oldest first (never anyone else's)."""
    rows = (
        await session.execute(
            select(Analysis.id, Analysis.created_at, Analysis.anomaly_score, Analysis.risk_level)
            .where(Analysis.owner_key == owner.key, Analysis.anomaly_score.is_not(None))
            .order_by(Analysis.created_at.desc(), Analysis.id)
            .limit(EARLIER_ANALYSES)
        )
    ).all()
    return [
        PastAnalysis(
            session_id=str(r[0]),
            created_at=r[1],
            anomaly_score=float(r[2] or 0.0),
            risk_level=str(r[3]) if r[3] else None,
        )
        for r in reversed(rows)
    ]


async def recent_history(
    session: AsyncSession, owner: Owner, conversation_id: str
) -> list[tuple[str, str]]:
    """The last turns of a conversation (oldest first) as (role, content)."""
    rows = (
        await session.execute(
            select(ChatMessage.role, ChatMessage.content)
            .where(
                ChatMessage.conversation_id == conversation_id,
                ChatMessage.owner_key == owner.key,
            )
            .order_by(ChatMessage.created_at.desc())
            .limit(HISTORY_TURNS * 2)
        )
    ).all()
    return [(str(r[0]), str(r[1])) for r in reversed(rows)]


async def conversation(
    session: AsyncSession, owner: Owner, conversation_id: str
) -> list[ChatMessage]:
    """Every saved turn of the owner's conversation; 404 when there is none."""
    rows = list(
        (
            await session.execute(
                select(ChatMessage)
                .where(
                    ChatMessage.conversation_id == conversation_id,
                    ChatMessage.owner_key == owner.key,
                )
                .order_by(ChatMessage.created_at)
            )
        ).scalars()
    )
    if not rows:
        raise NotFoundError(f"No conversation {conversation_id}.", code="conversation_not_found")
    return rows
