"""Clinical NLP: entities with negation/uncertainty and zero-shot condition ranking.

Heavy modules (torch, transformers, spaCy) load on first use of a name, not at import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from backend.ml.nlp.types import Entity, NLPResult, TextEmbedder

if TYPE_CHECKING:
    from backend.ml.nlp.pipeline import (
        DEFAULT_MODEL_DIR,
        ClinicalNLP,
        SentenceTransformerEmbedder,
        load_clinical_nlp,
        load_minilm_embedder,
    )

_LAZY = {
    "DEFAULT_MODEL_DIR",
    "ClinicalNLP",
    "SentenceTransformerEmbedder",
    "load_clinical_nlp",
    "load_minilm_embedder",
}

__all__ = [
    "DEFAULT_MODEL_DIR",
    "ClinicalNLP",
    "Entity",
    "NLPResult",
    "SentenceTransformerEmbedder",
    "TextEmbedder",
    "load_clinical_nlp",
    "load_minilm_embedder",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("backend.ml.nlp.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
