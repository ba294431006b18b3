"""Chat domain: the engine's lazy construction, the corpus's first build, saving turns."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio

from backend.analysis.service import Owner
from backend.db.models import ChatMessage
from backend.db.session import transaction
from backend.ml.catalog import EMBEDDER
from backend.process import settle_heap
from backend.state import AppState

logger = logging.getLogger(__name__)


async def get_chat_engine(state: AppState) -> Any:
    """The chat engine, built once; its retriever is attached as soon as the corpus exists.

    While the corpus is missing or still building, the engine answers questions about the
    analysis and refuses knowledge questions it cannot ground (weak retrieval).
    """
    lock: asyncio.Lock = state.extras.setdefault("chat_lock", asyncio.Lock())
    engine = state.extras.get("chat_engine")
    if engine is not None and engine.retriever is not None:
        return engine
    async with lock:
        engine = state.extras.get("chat_engine")
        if engine is None:
            from backend.ml.rag import ChatEngine

            settings = state.settings
            engine = ChatEngine(
                None,
                gemini_api_key=settings.gemini_api_key,
                gemini_base_url=settings.gemini_base_url,
                gemini_model=settings.gemini_model,
                gemini_timeout_s=settings.gemini_timeout_s,
                local_llm_path=settings.local_llm_path,
                limiter=state.extras.get("inference_limiter"),
            )
            state.extras["chat_engine"] = engine
            settle_heap()  # the engine's objects live as long as the process
        if engine.retriever is None:
            await attach_retriever(state, engine)
        return engine


RETRIEVER_RETRY_S = 30.0


async def attach_retriever(state: AppState, engine: Any) -> None:
    """Open the retriever if the corpus exists (blocking work runs in a thread)."""
    from backend.ml.rag import corpus_exists, open_retriever

    settings = state.settings
    chroma_dir = settings.chroma_dir
    assert chroma_dir is not None  # noqa: S101
    if state.extras.get("corpus_status", {}).get("state") in {"checking", "building"}:
        return  # the startup task attaches it when the corpus is ready
    # Opening the store to look costs milliseconds: without a corpus, look again at most
    # every RETRIEVER_RETRY_S, not on every chat request.
    now = time.monotonic()
    if now < state.extras.get("retriever_next_probe", 0.0):
        return
    state.extras["retriever_next_probe"] = now + RETRIEVER_RETRY_S
    if not await anyio.to_thread.run_sync(corpus_exists, chroma_dir, settings.chroma_url):
        return
    embedder = await state.registry.get(EMBEDDER)
    engine.retriever = await anyio.to_thread.run_sync(
        lambda: open_retriever(chroma_dir, embedder, chroma_url=settings.chroma_url)
    )
    settle_heap()  # the open store lives as long as the process


async def build_corpus_if_missing(state: AppState) -> None:
    """First start: fill the corpus in a thread while the service keeps answering."""
    from backend.ml.rag import build_corpus, corpus_exists

    settings = state.settings
    chroma_dir = settings.chroma_dir
    assert chroma_dir is not None  # noqa: S101
    status: dict[str, Any] = {"ok": True, "state": "checking"}
    state.extras["corpus_status"] = status
    try:
        if await anyio.to_thread.run_sync(corpus_exists, chroma_dir, settings.chroma_url):
            status["state"] = "ready"
            return
        if not settings.corpus_data_dir.exists():
            status["state"] = "missing"
            status["detail"] = f"corpus source {settings.corpus_data_dir} not found"
            return
        status["state"] = "building"
        embedder = await state.registry.get(EMBEDDER)

        def progress(done: int, total: int) -> None:
            status["progress"] = f"{done}/{total}"

        stats = await anyio.to_thread.run_sync(
            lambda: build_corpus(settings.corpus_data_dir, chroma_dir, embedder, progress=progress)
        )
        status.update(state="ready", stats=stats)
        engine = state.extras.get("chat_engine")
        if engine is not None and engine.retriever is None:
            state.extras.pop("retriever_next_probe", None)
            await attach_retriever(state, engine)
    except Exception as exc:  # noqa: BLE001 - chat degrades; the service stays up
        logger.exception("corpus build failed")
        status.update(state="failed", detail=type(exc).__name__)


async def save_turn(
    state: AppState,
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
    async with transaction(state.sessionmaker) as session:
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
