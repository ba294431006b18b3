"""Retrieval-augmented chat: corpus, retrieval, generators (Gemini, local LLM, templates)."""

from backend.ml.rag.corpus import build_corpus, corpus_exists, load_documents
from backend.ml.rag.engine import ChatEngine
from backend.ml.rag.intents import Intent, detect_intent
from backend.ml.rag.retriever import Retriever, open_retriever
from backend.ml.rag.safety import DISCLAIMER, StreamingDoseFilter, redact_doses, scrub_pii
from backend.ml.rag.types import ChatContext, ChatEvent, Chunk, Passage

__all__ = [
    "DISCLAIMER",
    "ChatContext",
    "ChatEngine",
    "ChatEvent",
    "Chunk",
    "Intent",
    "Passage",
    "Retriever",
    "StreamingDoseFilter",
    "build_corpus",
    "corpus_exists",
    "detect_intent",
    "load_documents",
    "open_retriever",
    "redact_doses",
    "scrub_pii",
]
