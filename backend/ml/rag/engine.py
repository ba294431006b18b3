"""The chat engine: retrieve, gate, generate through the first tier that works, filter, stream.

Events, in order: one `sources`, then `token`s, then `done` (or `error` if every tier failed).
Tiers: 1 Gemini (cloud; gets identifier-free text only), 2 a local LLM, 3 templates. A tier that
fails before its first token is skipped silently; one that fails mid-answer is followed by a short
notice and the next tier's answer. Every tier's text passes the dose filter, and every answer ends
with the disclaimer.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anyio

from backend.ml.rag.analysis_facts import AnalysisFacts, analysis_facts
from backend.ml.rag.generators.base import Generator, GeneratorError
from backend.ml.rag.generators.breaker import CircuitBreaker
from backend.ml.rag.generators.gemini import GeminiGenerator
from backend.ml.rag.generators.local import LocalLLM, LocalLLMGenerator
from backend.ml.rag.generators.template import TemplateGenerator
from backend.ml.rag.intents import ANALYSIS_INTENTS, Intent, detect_intent
from backend.ml.rag.prompts import PromptInput
from backend.ml.rag.retriever import Retriever
from backend.ml.rag.safety import (
    DISCLAIMER,
    OFF_TOPIC_REFUSAL,
    WEAK_RETRIEVAL_REFUSAL,
    StreamingDoseFilter,
)
from backend.ml.rag.types import ChatContext, ChatEvent, Passage

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
# MiniLM cosine between a question and the best passage. Chest questions score about 0.45-0.8
# against this corpus; unrelated ones ("capital of France", "bitcoin price") stay under 0.25.
OFF_TOPIC_SIMILARITY = 0.30
MIN_PASSAGE_SIMILARITY = 0.35
_FOLLOW_UP = re.compile(r"\b(?:it|this|that|they|them|these|those|its)\b", re.IGNORECASE)
FALLBACK_NOTICE = (
    "\n\n(The answer was interrupted; here is MedSight's built-in answer instead.)\n\n"
)


class ChatEngine:
    """Answers one message at a time as an async stream of ChatEvents (safe to share).

    Tier 2 is the local model given by `local_llm`/`local_llm_path`, else the packaged SmolLM2
    when llama-cpp-python is installed (the default install); `local_tier=False` turns it off.

    `retriever=None` (e.g. while the corpus is still being built) answers questions about the
    analysis and refuses knowledge questions as "weak_retrieval"; set `engine.retriever` later.
    """

    def __init__(
        self,
        retriever: Retriever | None,
        *,
        gemini_api_key: str | None,
        gemini_base_url: str | None = None,
        gemini_model: str = "gemini-2.0-flash",
        gemini_timeout_s: float = 8.0,
        local_llm_path: str | None = None,
        local_llm: LocalLLM | None = None,
        local_tier: bool = True,
        local_llm_threads: int = 1,
        gemini_first_token_timeout_s: float = 2.0,
        gemini_stall_timeout_s: float = 2.0,
        gemini_api_version: str | None = None,
        breaker: CircuitBreaker | None = None,
        top_k: int = 4,
        off_topic_similarity: float = OFF_TOPIC_SIMILARITY,
        min_passage_similarity: float = MIN_PASSAGE_SIMILARITY,
        refuse_dosage_questions: bool = True,
        generators: Sequence[Generator] | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.retriever = retriever
        self.top_k = top_k
        self.off_topic_similarity = off_topic_similarity
        self.min_passage_similarity = min_passage_similarity
        self.refuse_dosage_questions = refuse_dosage_questions
        self._limiter = limiter
        self.template = TemplateGenerator()
        if generators is not None:
            self.generators: list[Generator] = list(generators)
        else:
            self.gemini = GeminiGenerator(
                api_key=gemini_api_key,
                model=gemini_model,
                base_url=gemini_base_url,
                timeout_s=gemini_timeout_s,
                first_token_timeout_s=gemini_first_token_timeout_s,
                stall_timeout_s=gemini_stall_timeout_s,
                api_version=gemini_api_version,
                breaker=breaker,
            )
            self.generators = [self.gemini]
            if local_tier:
                self.local = LocalLLMGenerator(
                    local_llm, path=local_llm_path, threads=local_llm_threads
                )
                self.generators.append(self.local)
            self.generators.append(self.template)

    def status(self) -> dict[str, Any]:
        """Which tiers could answer now (for health endpoints)."""
        out: dict[str, Any] = {g.name: g.available() for g in self.generators}
        gemini = getattr(self, "gemini", None)
        if gemini is not None:
            out["gemini_breaker"] = gemini.breaker.state
        return out

    # --- helpers ------------------------------------------------------------------------
    def _query(self, message: str, history: Sequence[tuple[str, str]]) -> str:
        # A short follow-up ("and how is it treated?") borrows the previous user question.
        if len(message.split()) < 8 and _FOLLOW_UP.search(message):
            for role, text in reversed(history):
                if role == "user":
                    return f"{text} {message}"
        return message

    async def _retrieve(self, query: str) -> list[Passage]:
        if self.retriever is None:
            return []
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(2)
        return await anyio.to_thread.run_sync(
            self.retriever.search, query, self.top_k, limiter=self._limiter
        )

    def _gate(
        self, intent: Intent, facts: AnalysisFacts | None, top: float, used: int
    ) -> str | None:
        """The refusal reason, or None when the question should be answered."""
        if intent in ANALYSIS_INTENTS:
            return None
        # "Is this serious?" has no topic words; with an analysis, it is about the analysis.
        if facts is not None and intent in (Intent.RISK, Intent.SYMPTOMS):
            return None
        if self.retriever is None:
            return "weak_retrieval"  # no library yet: we cannot tell on- from off-topic
        if top < self.off_topic_similarity:
            return "off_topic"
        return "weak_retrieval" if used == 0 else None

    def _tiers(self, intent: Intent) -> list[Generator]:
        if intent is Intent.GREETING or (intent is Intent.DOSAGE and self.refuse_dosage_questions):
            return [self.template]  # fixed, safe wording; no model needed
        tiers = [g for g in self.generators if g.available()]
        if intent is Intent.HISTORY:
            # Dates and score changes are exact figures: the small local model is not trusted to
            # restate them (it swaps "rose" and "fell"); the template states them as read.
            tiers = [g for g in tiers if g.name != "local"]
        return tiers or [self.template]

    # --- the stream ---------------------------------------------------------------------
    async def stream(self, message: str, context: ChatContext) -> AsyncGenerator[ChatEvent, None]:
        """Answer `message`; closing the generator stops generation at once."""
        t0 = time.perf_counter()
        message = message.strip()[:MAX_MESSAGE_CHARS]
        intent = detect_intent(message)
        facts = analysis_facts(context.analysis)
        hits: list[Passage] = []
        # A question about earlier analyses is answered from them alone.
        if intent not in (Intent.GREETING, Intent.DOSAGE, Intent.HISTORY) and message:
            try:
                hits = await self._retrieve(self._query(message, context.history))
            except Exception:  # noqa: BLE001 - answer from the analysis without passages
                logger.exception("retrieval failed")
        top = max((p.similarity for p in hits), default=0.0)
        passages = [p for p in hits if p.similarity >= self.min_passage_similarity]
        refusal = self._gate(intent, facts, top, len(passages)) if message else "off_topic"
        if refusal:
            passages = []
        yield ChatEvent(
            "sources",
            {
                "sources": [
                    {
                        "pmid": p.pmid,
                        "title": p.title,
                        "score": round(p.similarity, 4),
                        "source": p.source,
                        "url": p.url,
                    }
                    for p in passages
                ]
            },
        )
        first_token_ms: float | None = None
        fallbacks: list[dict[str, str]] = []
        removed = 0
        usage: dict[str, Any] = {}
        tier_name: str | None = None
        if refusal:
            text = OFF_TOPIC_REFUSAL if refusal == "off_topic" else WEAK_RETRIEVAL_REFUSAL
            first_token_ms = (time.perf_counter() - t0) * 1000
            yield ChatEvent("token", {"text": text})
            tier_name = self.template.name
        else:
            inp = PromptInput(
                message,
                intent,
                facts,
                passages,
                list(context.history),
                earlier=list(context.earlier),
                session_id=context.session_id,
            )
            emitted_any = False
            for gen in self._tiers(intent):
                dose_filter = StreamingDoseFilter()
                tier_usage: dict[str, Any] = {}
                emitted_here = False
                try:
                    async with contextlib.aclosing(gen.stream(inp, tier_usage)) as pieces:
                        async for piece in pieces:
                            out = dose_filter.feed(piece)
                            if out:
                                if first_token_ms is None:
                                    first_token_ms = (time.perf_counter() - t0) * 1000
                                emitted_here = emitted_any = True
                                yield ChatEvent("token", {"text": out})
                    tail = dose_filter.flush()
                    if tail:
                        if first_token_ms is None:
                            first_token_ms = (time.perf_counter() - t0) * 1000
                        emitted_here = emitted_any = True
                        yield ChatEvent("token", {"text": tail})
                except GeneratorError as exc:
                    fallbacks.append({"tier": gen.name, "reason": str(exc)})
                    removed += dose_filter.removed
                    if emitted_here:
                        yield ChatEvent("token", {"text": FALLBACK_NOTICE})
                    continue
                removed += dose_filter.removed
                usage = tier_usage
                tier_name = gen.name
                break
            if tier_name is None:
                yield ChatEvent(
                    "error",
                    {
                        "message": "No answer could be generated; please try again.",
                        "fallbacks": fallbacks,
                        "partial": emitted_any,
                    },
                )
                return
        yield ChatEvent("token", {"text": f"\n\n{DISCLAIMER}"})
        yield ChatEvent(
            "done",
            {
                "tier": tier_name,
                "intent": intent.value,
                "refusal": refusal
                or ("dosage" if intent is Intent.DOSAGE and self.refuse_dosage_questions else None),
                "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
                "first_token_ms": round(first_token_ms or 0.0, 1),
                "usage": usage,
                "fallbacks": fallbacks,
                "doses_removed": removed,
                "disclaimer": DISCLAIMER,
            },
        )
