"""The fixed question set for the local tier and an independent faithfulness check.

The check does not reuse the tier's own filter (Porter-stemmed overlap with the best source): a
sentence counts as supported when it cites a source the answer was given, every number in it
appears in that source, and either most of its plain words appear there or MiniLM puts it close
to one of that source's sentences (a lexical and a semantic entailment proxy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from backend.ml.rag.safety import DISCLAIMER
from backend.ml.rag.text import split_sentences
from backend.ml.rag.types import Passage

# Knowledge questions the test corpus slice can answer (MedQuAD: Pneumonia, COPD, Asthma,
# Pulmonary Embolism; PubMed abstracts on inhalers, influenza, pleural effusion, dyspnoea).
ANSWERABLE = [
    "What is pneumonia?",
    "What are the symptoms of asthma?",
    "What is COPD and what causes it?",
    "What is a pulmonary embolism?",
    "How is COPD treated?",
    "Do health care providers know how to teach inhaler use?",
    "Can family physicians act as sentinels for influenza?",
    "What is acute chest syndrome in sickle cell disease?",
]
# Off-topic, or on-topic with nothing in the library: the tier must decline, not improvise.
UNANSWERABLE = [
    "What is the capital of France?",
    "How do I change the oil in my car?",
]

WORD = re.compile(r"[a-z][a-z'-]+")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
CITED = re.compile(r"\[([^\]]+)\]")
FUNCTION_WORDS = frozenset(
    "a an the of to in on and or is are was were be been it its this that these those with for as "
    "by at from can may might which who what when how not no your you they their there than also "
    "such has have had do does did".split()
)
MIN_WORD_PRECISION = 0.5
MIN_COSINE = 0.6


@dataclass
class Verdict:
    sentence: str
    citation: str | None
    supported: bool
    why: str


def answer_sentences(answer: str) -> list[str]:
    body = answer.replace(DISCLAIMER, "").strip()
    return [s for s in split_sentences(body) if s.strip()]


def judge(
    answer: str,
    sources: dict[str, str],
    embed: Callable[[Sequence[str]], list[list[float]]],
) -> list[Verdict]:
    """One verdict per sentence of `answer`; `sources` maps a citation to the text it cites."""
    out: list[Verdict] = []
    for sentence in answer_sentences(answer):
        cited = CITED.findall(sentence)
        citation = cited[-1] if cited else None
        if citation is None or citation not in sources:
            out.append(Verdict(sentence, citation, False, "no valid citation"))
            continue
        source = sources[citation]
        plain = CITED.sub("", sentence).lower()
        missing = [n for n in NUMBER.findall(plain) if n not in source]
        if missing:
            out.append(Verdict(sentence, citation, False, f"numbers not in source: {missing}"))
            continue
        words = [w for w in WORD.findall(plain) if w not in FUNCTION_WORDS]
        src_words = set(WORD.findall(source.lower()))
        precision = sum(w in src_words for w in words) / max(1, len(words))
        if precision >= MIN_WORD_PRECISION:
            out.append(Verdict(sentence, citation, True, f"word precision {precision:.2f}"))
            continue
        candidates = split_sentences(source) or [source]
        vectors = embed([plain, *candidates])
        best = max(sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:])
        out.append(
            Verdict(
                sentence,
                citation,
                best >= MIN_COSINE,
                f"word precision {precision:.2f}, cosine {best:.2f}",
            )
        )
    return out


def source_texts(passages: Sequence[Passage], shown: list[dict[str, Any]]) -> dict[str, str]:
    """Citation -> text of the retrieved passages the engine listed in its `sources` event.

    MedQuAD passages of one agency share a citation, so their texts are joined.
    """
    listed = {(s.get("pmid"), s.get("title")) for s in shown}
    out: dict[str, str] = {}
    for p in passages:
        if (p.pmid, p.title) in listed:
            out[p.citation] = (out.get(p.citation, "") + f" {p.title}. {p.text}").strip()
    return out
