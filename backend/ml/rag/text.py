"""Text helpers for the RAG corpus: sentence splitting, chunking, BM25 tokens."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")

# A short English stop list: BM25 gains little from function words and they slow queries.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves""".split()
)
# "no"/"not" carry meaning in medical questions (e.g. "does X not improve Y?").
STOPWORDS = STOPWORDS - {"no", "not"}


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences on terminal punctuation followed by a capital or digit."""
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if p]


def chunk_text(
    text: str, count_tokens: Callable[[Sequence[str]], list[int]], max_tokens: int
) -> list[str]:
    """Pack whole sentences into about-equal chunks of at most `max_tokens` word pieces.

    The number of chunks is the minimum that fits, and each chunk aims at the average size, so a
    300-token abstract becomes two halves rather than 254 + 46. A single sentence longer than
    `max_tokens` stays whole (the embedder truncates it; BM25 still sees all of it).
    """
    sentences = split_sentences(text)
    if not sentences:
        return []
    counts = count_tokens(sentences)
    total = sum(counts)
    if total <= max_tokens:
        return [" ".join(sentences)]
    target = total / math.ceil(total / max_tokens)
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for sentence, n in zip(sentences, counts, strict=True):
        # Close the chunk when adding this sentence would overshoot the target by more than
        # stopping short would undershoot it, or would break the hard limit.
        if current and (size + n > max_tokens or size + n / 2 > target):
            chunks.append(" ".join(current))
            current, size = [], 0
        current.append(sentence)
        size += n
    if current:
        chunks.append(" ".join(current))
    return chunks


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer().stem(word))


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    # nltk's Porter stemmer is pure Python and needs no downloaded data.
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


def bm25_tokens(text: str) -> list[str]:
    """Lower-case word tokens, stop words dropped, Porter-stemmed."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
