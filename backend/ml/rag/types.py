"""Small value types shared by the corpus, the retriever and the chat engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from backend.contract import AnalysisResult

EventName = Literal["sources", "token", "done", "error"]


@dataclass(frozen=True)
class Chunk:
    """One indexed passage of a source document."""

    chunk_id: str
    doc_id: str
    pmid: str | None
    title: str
    text: str
    source: str
    url: str | None = None


@dataclass(frozen=True)
class Passage:
    """A retrieved passage: `score` is the fused rank score, `similarity` the dense cosine."""

    pmid: str | None
    title: str
    text: str
    source: str
    score: float
    similarity: float = 0.0
    bm25: float = 0.0
    chunk_id: str = ""
    doc_id: str = ""
    url: str | None = None

    @property
    def citation(self) -> str:
        """How an answer cites this passage: a PMID, or the MedQuAD source name."""
        return f"PMID {self.pmid}" if self.pmid else self.source


@dataclass(frozen=True)
class PastAnalysis:
    """One of the user's finished, scored analyses (read owner-checked by the chat domain)."""

    session_id: str
    created_at: datetime
    anomaly_score: float
    risk_level: str | None = None


@dataclass
class ChatContext:
    """What the engine knows about the conversation besides the new message.

    `earlier` holds the user's scored analyses, oldest first (the attached one included), when
    the question refers to them; the engine never reads the database itself.
    """

    analysis: AnalysisResult | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # (role, text), oldest first
    earlier: list[PastAnalysis] = field(default_factory=list)
    session_id: str | None = None


@dataclass(frozen=True)
class ChatEvent:
    """One server-sent event: the lead's router serialises `data` as JSON."""

    event: EventName
    data: dict[str, Any]
