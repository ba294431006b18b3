"""Request and response models of the chat API, and the events its stream sends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from backend.contract import UtcDatetime

ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class ChatRequest(BaseModel):
    message: str = Field(
        min_length=1,
        max_length=2000,
        description="The question",
        examples=["What does a high anomaly score mean?"],
    )
    session_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Analysis session the question is about"
    )
    conversation_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Continue a conversation (default: new)"
    )

    @field_validator("message")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in value):
            raise ValueError("message must not contain control characters")
        if not value.strip():
            raise ValueError("message must not be blank")
        return value


class Source(BaseModel):
    """A passage the answer cites."""

    citation: str = Field(description="How the answer cites it, e.g. `PMID 12345678`")
    title: str = ""
    url: str | None = Field(default=None, description="Where to read it (PubMed, MedlinePlus)")
    pmid: str | None = None
    source: str = ""
    score: float | None = None


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    tier: str | None = Field(description="Which tier answered: gemini, local or template")
    sources: list[dict[str, object]] | None
    created_at: UtcDatetime


# The events of `POST /api/v1/chat` (documented in OpenAPI; each is `event: <name>` + JSON data).
class MetaEvent(BaseModel):
    """First event: the conversation id to continue with, and the disclaimer."""

    conversation_id: str
    disclaimer: str


class SourcesEvent(BaseModel):
    """The passages retrieved for the answer (may be empty)."""

    sources: list[Source]


class TokenEvent(BaseModel):
    """A piece of the answer's text, in order."""

    text: str


class DoneEvent(BaseModel):
    """Last event of a completed answer."""

    tier: str = Field(description="`gemini`, `local` or `template`")
    conversation_id: str
    latency_ms: float | None = None
    intent: str | None = None


class ErrorEvent(BaseModel):
    """The answer could not be completed; nothing of this turn is saved."""

    message: str
