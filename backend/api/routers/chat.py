"""Clinical chat over SSE: sources, tokens, done/error; only completed turns are saved."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from backend import DISCLAIMER
from backend.analysis import service as analysis_service
from backend.api.deps import OwnerDep, SessionDep, StateDep
from backend.api.errors import problem_responses
from backend.auth.ratelimit import rate_limit
from backend.chat.service import get_chat_engine, save_turn
from backend.db.base import new_id
from backend.db.models import ChatMessage

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

HEARTBEAT_S = 10.0
HISTORY_TURNS = 6


_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=2000, description="The question")
    session_id: str | None = Field(
        default=None, pattern=_ID_PATTERN, description="Analysis session the question is about"
    )
    conversation_id: str | None = Field(
        default=None, pattern=_ID_PATTERN, description="Continue a conversation (default: new)"
    )

    @field_validator("message")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in value):
            raise ValueError("message must not contain control characters")
        if not value.strip():
            raise ValueError("message must not be blank")
        return value


class ChatTurn(BaseModel):
    role: str
    content: str
    tier: str | None
    sources: list[dict[str, Any]] | None
    created_at: str


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


@router.post(
    "",
    summary="Ask about an analysis; answers stream as server-sent events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events: sources, token, done, error (plus `: ping` heartbeats).",
        },
        **problem_responses(404, 422, 429, 503),
    },
    dependencies=[rate_limit("chat")],
)
async def chat(
    body: ChatRequest, request: Request, state: StateDep, session: SessionDep, owner: OwnerDep
) -> StreamingResponse:
    analysis_ctx: dict[str, Any] | None = None
    if body.session_id:
        analysis = await analysis_service.get_analysis(session, owner, body.session_id)
        if analysis.result is not None:
            analysis_ctx = dict(analysis.result)
    conversation_id = body.conversation_id or body.session_id or new_id()
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
    history = [(str(r[0]), str(r[1])) for r in reversed(rows)]
    engine = await get_chat_engine(state)
    # The request's DB session is released before streaming; the generator opens its own.
    await session.commit()

    async def events() -> AsyncIterator[bytes]:
        from backend.ml.rag import ChatContext

        started = time.perf_counter()
        answer: list[str] = []
        sources: list[dict[str, Any]] = []
        done: dict[str, Any] | None = None
        stream = engine.stream(
            body.message, ChatContext(analysis=_slim(analysis_ctx), history=history)
        )
        iterator = stream.__aiter__()
        try:
            yield _sse("meta", {"conversation_id": conversation_id, "disclaimer": DISCLAIMER})
            while True:
                try:
                    event = await asyncio.wait_for(iterator.__anext__(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": ping\n\n"
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
                    yield _sse("done", done)
                    continue
                yield _sse(event.event, event.data)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("chat stream failed")
            yield _sse("error", {"message": "The answer could not be completed. Please retry."})
            return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if done is not None:
            await save_turn(
                state,
                owner=owner,
                conversation_id=conversation_id,
                analysis_id=body.session_id,
                question=body.message,
                answer="".join(answer),
                tier=str(done.get("tier", "")),
                sources=sources,
            )

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{conversation_id}/messages",
    response_model=list[ChatTurn],
    summary="The saved turns of a conversation",
    responses=problem_responses(404),
)
async def messages(
    conversation_id: Annotated[str, Path(pattern=_ID_PATTERN)],
    session: SessionDep,
    owner: OwnerDep,
) -> list[ChatTurn]:
    rows = (
        await session.execute(
            select(ChatMessage)
            .where(
                ChatMessage.conversation_id == conversation_id,
                ChatMessage.owner_key == owner.key,
            )
            .order_by(ChatMessage.created_at)
        )
    ).scalars()
    turns = [
        ChatTurn(
            role=m.role,
            content=m.content,
            tier=m.tier,
            sources=m.sources,
            created_at=m.created_at.isoformat(),
        )
        for m in rows
    ]
    if not turns:
        from backend.errors import NotFoundError

        raise NotFoundError(f"No conversation {conversation_id}.", code="conversation_not_found")
    return turns


def _slim(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The analysis as chat context, without the heavy heatmap image."""
    if result is None:
        return None
    slim = dict(result)
    if isinstance(slim.get("vision"), dict):
        slim["vision"] = {k: v for k, v in slim["vision"].items() if k != "heatmap_base64"}
    return slim
