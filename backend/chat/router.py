"""Clinical chat over SSE: sources, tokens, done/error; only completed turns are saved."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse

from backend.accounts.dependencies import OwnerDep
from backend.accounts.ratelimit import rate_limit
from backend.analysis import service as analysis_service
from backend.chat import service
from backend.chat.schemas import (
    ID_PATTERN,
    ChatRequest,
    ChatTurn,
    DoneEvent,
    ErrorEvent,
    MetaEvent,
    SourcesEvent,
    TokenEvent,
)
from backend.chat.service import ChatService
from backend.contract import DISCLAIMER, AnalysisResult, load_result
from backend.db.base import new_id
from backend.ml.rag.intents import Intent, detect_intent
from backend.ml.rag.types import PastAnalysis
from backend.web.deps import SessionDep
from backend.web.problems import problem_responses
from backend.web.sse import HEADERS, HEARTBEAT, sse_event, sse_response_doc
from backend.web.state import provide

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

HEARTBEAT_S = 10.0
FAILED_ANSWER = "The answer could not be completed. Please retry."
ChatDep = Annotated[ChatService, provide(ChatService)]
CHAT_EVENTS: dict[str, type[Any]] = {
    "meta": MetaEvent,
    "sources": SourcesEvent,
    "token": TokenEvent,
    "done": DoneEvent,
    "error": ErrorEvent,
}


@router.post(
    "",
    summary="Ask about an analysis; answers stream as server-sent events",
    response_class=StreamingResponse,
    responses={
        200: sse_response_doc(
            "The answer as it is written. A completed answer ends with `done`, a failed one "
            "with `error`.",
            CHAT_EVENTS,
        ),
        **problem_responses(404, 422, 429, 503),
    },
    dependencies=[rate_limit("chat")],
)
async def ask(
    body: ChatRequest, request: Request, chat: ChatDep, session: SessionDep, owner: OwnerDep
) -> StreamingResponse:
    analysis: AnalysisResult | None = None
    if body.session_id:
        row = await analysis_service.get_analysis(session, owner, body.session_id)
        if row.result is not None:
            analysis = load_result(row.result)
    conversation_id = body.conversation_id or body.session_id or new_id()
    history = await service.recent_history(session, owner, conversation_id)
    earlier: list[PastAnalysis] = []
    if detect_intent(body.message) is Intent.HISTORY:
        earlier = await service.earlier_analyses(session, owner)
    engine = await chat.engine()
    # The request's DB session is released before streaming; the generator opens its own.
    await session.commit()

    async def events() -> AsyncIterator[bytes]:
        from backend.ml.rag import ChatContext

        started = time.perf_counter()
        answer: list[str] = []
        sources: list[dict[str, Any]] = []
        done: dict[str, Any] | None = None
        context = ChatContext(
            analysis=analysis, history=history, earlier=earlier, session_id=body.session_id
        )
        stream = engine.stream(body.message, context)
        iterator = stream.__aiter__()
        try:
            yield sse_event("meta", {"conversation_id": conversation_id, "disclaimer": DISCLAIMER})
            while True:
                try:
                    event = await asyncio.wait_for(iterator.__anext__(), HEARTBEAT_S)
                except TimeoutError:
                    yield HEARTBEAT
                    continue
                except StopAsyncIteration:
                    break
                if await request.is_disconnected():
                    logger.info("chat client disconnected", extra={"conversation": conversation_id})
                    return
                if event.event == "sources":
                    sources = list(event.data.get("sources", []))
                elif event.event == "token":
                    answer.append(str(event.data.get("text", "")))
                elif event.event == "done":
                    done = dict(event.data)
                    done.setdefault("latency_ms", round((time.perf_counter() - started) * 1000, 1))
                    done["conversation_id"] = conversation_id
                    yield sse_event("done", done)
                    continue
                yield sse_event(event.event, event.data)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("chat stream failed")
            yield sse_event(
                "error", {"message": "The answer could not be completed. Please retry."}
            )
            return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if done is not None:
            await chat.save_turn(
                owner=owner,
                conversation_id=conversation_id,
                analysis_id=body.session_id,
                question=body.message,
                answer="".join(answer),
                tier=str(done.get("tier", "")),
                sources=sources,
            )

    return StreamingResponse(events(), media_type="text/event-stream", headers=HEADERS)


@router.get(
    "/{conversation_id}/messages",
    response_model=list[ChatTurn],
    summary="The saved turns of a conversation",
    responses=problem_responses(404),
)
async def list_messages(
    conversation_id: Annotated[str, Path(pattern=ID_PATTERN)],
    session: SessionDep,
    owner: OwnerDep,
) -> list[ChatTurn]:
    rows = await service.conversation(session, owner, conversation_id)
    return [
        ChatTurn(
            role=m.role,
            content=m.content,
            tier=m.tier,
            sources=m.sources,
            created_at=m.created_at,
        )
        for m in rows
    ]
