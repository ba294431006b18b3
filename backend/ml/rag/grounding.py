"""Grounding for a small local model: keep only sentences a source supports, and cite that source.

A 135M-parameter model paraphrases well but invents facts and citations. Its answer is cut into
sentences as it streams; each sentence is kept only when enough of its content words (Porter
stems, stop words dropped) appear in one retrieved passage or in the analysis summary, and it is
then cited with that source (an invented or wrong citation is replaced). When no generated
sentence survives, the passages' own sentences closest to the question are quoted instead, and
when even those share nothing with the question the tier declines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from backend.ml.rag.text import bm25_tokens, split_sentences
from backend.ml.rag.types import Passage

# Share of a sentence's content words that must appear in one source. Measured on the fixed
# question set (tests/unit/rag/test_faithfulness.py): SmolLM2's unsupported sentences ("It can be
# caused by smoking [PMID ...]" about a passage on infants) score under 0.5; restatements of a
# passage score 0.7-1.0.
MIN_SUPPORT = 0.6
MIN_CONTENT_WORDS = 2
ANALYSIS_CITATION = "your analysis"
_CITATION = re.compile(r"\s*\[[^\]]{0,80}\]")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n+")
NOT_IN_SOURCES = (
    "The retrieved reference passages do not answer this question, so I won't guess. Please ask "
    "your clinician."
)


@dataclass(frozen=True)
class Source:
    """Text an answer may rest on, and how the answer cites it."""

    citation: str
    text: str
    tokens: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def of(cls, citation: str, text: str) -> Source:
        return cls(citation, text, frozenset(bm25_tokens(text)))


def sources_for(passages: Sequence[Passage], analysis_text: str | None) -> list[Source]:
    out = [Source.of(p.citation, f"{p.title}. {p.text}") for p in passages]
    if analysis_text:
        out.append(Source.of(ANALYSIS_CITATION, analysis_text))
    return out


def strip_citations(sentence: str) -> str:
    return _CITATION.sub("", sentence).strip()


def support(sentence: str, source: Source) -> float:
    """Share of the sentence's content words found in the source (0 when it has too few)."""
    words = set(bm25_tokens(strip_citations(sentence)))
    if len(words) < MIN_CONTENT_WORDS:
        return 0.0
    return len(words & source.tokens) / len(words)


def best_source(sentence: str, sources: Sequence[Source]) -> tuple[Source | None, float]:
    best: tuple[Source | None, float] = (None, 0.0)
    for src in sources:
        s = support(sentence, src)
        if s > best[1]:
            best = (src, s)
    return best


def cite(sentence: str, citation: str) -> str:
    """The sentence without any citation it made up, ending with `[citation]`."""
    body = strip_citations(sentence)
    end = body[-1] if body and body[-1] in ".!?" else "."
    body = body.rstrip(".!?").rstrip()
    return f"{body} [{citation}]{end}"


def extractive_answer(question: str, passages: Sequence[Passage], n: int = 2) -> str:
    """The passages' sentences that share most words with the question, cited; else a decline."""
    q = set(bm25_tokens(question))
    scored: list[tuple[int, int, str, str]] = []
    for rank, p in enumerate(passages):
        for sentence in split_sentences(p.text):
            if sentence.endswith("?") or len(sentence) > 400:
                continue
            overlap = len(q & set(bm25_tokens(sentence)))
            if overlap:
                scored.append((-overlap, rank, sentence, p.citation))
    if not scored:
        return NOT_IN_SOURCES
    scored.sort(key=lambda t: (t[0], t[1]))
    return " ".join(cite(s, c) for _, _, s, c in scored[:n])


class GroundedStream:
    """Buffers streamed text into sentences and lets through only the supported ones, cited."""

    def __init__(self, sources: Sequence[Source], min_support: float = MIN_SUPPORT) -> None:
        self.sources = list(sources)
        self.min_support = min_support
        self._buf = ""
        self.kept = 0
        self.dropped = 0
        self._seen: set[str] = set()

    def _judge(self, sentence: str) -> str:
        sentence = sentence.strip()
        if not sentence:
            return ""
        src, score = best_source(sentence, self.sources)
        key = " ".join(bm25_tokens(strip_citations(sentence)))
        if src is None or score < self.min_support or key in self._seen:
            self.dropped += 1  # unsupported, or a repetition (small models loop)
            return ""
        self._seen.add(key)
        self.kept += 1
        return ("" if self.kept == 1 else " ") + cite(sentence, src.citation)

    def feed(self, piece: str) -> str:
        """Text that became a complete, supported sentence with this piece ('' otherwise)."""
        self._buf += piece
        out: list[str] = []
        while True:
            m = _BOUNDARY.search(self._buf)
            if m is None:
                break
            sentence, self._buf = self._buf[: m.start()], self._buf[m.end() :]
            out.append(self._judge(sentence))
        return "".join(out)

    def flush(self) -> str:
        rest, self._buf = self._buf, ""
        # A sentence cut off by the token limit is judged like any other.
        return self._judge(rest)
