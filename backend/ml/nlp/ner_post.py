"""Document-level post-processing of NER predictions: abbreviation propagation and consistency.

A sentence-level tagger decides every mention on its own, so one document can tag "acute renal
failure (ARF)" but leave a later bare "ARF" untagged, or tag "cisplatin" in one sentence and miss
it in the next. Two cheap, model-independent rules repair that inside one document:

* abbreviation propagation: when a predicted entity is directly followed by a parenthesised
  abbreviation-like token, ``long form ( ABBR )``, whose letters occur in order in the long
  form (first letter first, as in Schwartz and Hearst's rule), the abbreviation gets the long
  form's type there and at every other untagged (or single-token, differently typed)
  occurrence in the document;
* label consistency: a surface string predicted as an entity is also tagged where it occurs
  untagged elsewhere in the document, when its tagged occurrences are at least ``min_ratio`` of
  its tagged plus untagged ones (occurrences inside a longer entity count for neither).

Two views of the same rules: word level (``postprocess_words``: sentences of words with BIO tags,
used for corpus evaluation) and character level (``postprocess_spans``: spans with character
offsets into a text, used on the product path after ``NERTagger.tag_text``). Neither removes a
prediction; they add spans or change the type of a single-token abbreviation span.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.ml.nlp.ner_model import TaggedSpan

_ABBR = re.compile(r"^[A-Za-z][A-Za-z0-9\-]{1,9}$")
# Character view: an abbreviation in parentheses right after a span, "( ARF )" or "(ARF)".
_PAREN_ABBR = re.compile(r"\s*\(\s*([A-Za-z][A-Za-z0-9\-]{1,9})\s*\)")
_WORD_CHAR = re.compile(r"[A-Za-z0-9]")


def is_abbreviation(token: str) -> bool:
    """True for short tokens that look like an abbreviation: 2-10 chars, one upper-case letter."""
    return bool(_ABBR.match(token)) and any(c.isupper() for c in token)


def matches_long_form(abbr: str, long_form: str) -> bool:
    """True when the abbreviation could stand for the long form.

    Its first letter must start the long form, and all its letters and digits must occur in the
    long form in the same order ("ARF" / "acute renal failure"; not "GAD" / "glutamic acid").
    """
    chars = [c.lower() for c in abbr if c.isalnum()]
    text = long_form.lower()
    if not chars or not text or text[0] != chars[0]:
        return False
    pos = 1
    for c in chars[1:]:
        pos = text.find(c, pos)
        if pos < 0:
            return False
        pos += 1
    return True


def bio_to_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(first word, last word exclusive, type) for each entity in a BIO sequence."""
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    typ = ""
    for i, tag in enumerate([*tags, "O"]):
        if tag == "O" or tag.startswith("B-") or (tag.startswith("I-") and tag[2:] != typ):
            if start is not None:
                spans.append((start, i, typ))
                start = None
            if tag != "O":
                start, typ = i, tag[2:]
    return spans


def _abbreviations_words(words: list[list[str]], tags: list[list[str]]) -> dict[str, str]:
    """ABBR -> type for every ``<entity> ( ABBR )`` in a document (first definition wins)."""
    found: dict[str, str] = {}
    for sent, sent_tags in zip(words, tags, strict=True):
        for a, b, typ in bio_to_spans(sent_tags):
            if (
                b + 2 < len(sent)
                and sent[b] == "("
                and sent[b + 2] == ")"
                and is_abbreviation(sent[b + 1])
                and sent[b + 1] not in found
                and matches_long_form(sent[b + 1], " ".join(sent[a:b]))
            ):
                found[sent[b + 1]] = typ
    return found


def _is_free(tags: list[str], a: int, b: int) -> bool:
    """True when words a..b-1 are untagged and word b does not continue an entity."""
    if any(t != "O" for t in tags[a:b]):
        return False
    return not (b < len(tags) and tags[b].startswith("I-"))


def postprocess_words(
    words: list[list[str]],
    tags: list[list[str]],
    *,
    abbreviations: bool = True,
    consistency: bool = True,
    min_ratio: float = 0.67,
    min_chars: int = 3,
) -> list[list[str]]:
    """Apply the document-level rules to one document given as sentences of words and BIO tags.

    Returns new tag lists (the input is not modified). ``min_ratio`` is the least share of a surface
    string's tagged occurrences among its tagged plus untagged ones before the untagged ones
    are tagged alike;
    ``min_chars`` skips very short strings in the consistency rule.
    """
    out = [list(t) for t in tags]
    if abbreviations:
        for abbr, typ in _abbreviations_words(words, out).items():
            for sent, sent_tags in zip(words, out, strict=True):
                for i, w in enumerate(sent):
                    if w != abbr:
                        continue
                    single = sent_tags[i].startswith("B-") and not (
                        i + 1 < len(sent_tags) and sent_tags[i + 1].startswith("I-")
                    )
                    if _is_free(sent_tags, i, i + 1) or single:
                        sent_tags[i] = f"B-{typ}"
    if consistency:
        _consistency_words(words, out, min_ratio, min_chars)
    return out


def _consistency_words(
    words: list[list[str]], tags: list[list[str]], min_ratio: float, min_chars: int
) -> None:
    """Tag untagged occurrences of predicted surface strings (in place), longest first."""
    typed: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for sent, sent_tags in zip(words, tags, strict=True):
        for a, b, typ in bio_to_spans(sent_tags):
            typed[tuple(w.lower() for w in sent[a:b])][typ] += 1
    keys = [k for k in typed if len(" ".join(k)) >= min_chars and _WORD_CHAR.search(" ".join(k))]
    keys.sort(key=len, reverse=True)
    lowered = [[w.lower() for w in sent] for sent in words]
    for key in keys:
        n = len(key)
        hits = [
            (s, i)
            for s, sent in enumerate(lowered)
            for i in range(len(sent) - n + 1)
            if tuple(sent[i : i + n]) == key
        ]
        free = [(s, i) for s, i in hits if _is_free(tags[s], i, i + n)]
        tagged = typed[key].total()
        if not free or tagged / (tagged + len(free)) < min_ratio:
            continue
        typ = typed[key].most_common(1)[0][0]
        for s, i in free:
            if _is_free(tags[s], i, i + n):
                tags[s][i] = f"B-{typ}"
                for j in range(i + 1, i + n):
                    tags[s][j] = f"I-{typ}"


def postprocess_windows(
    words: list[list[str]],
    tags: list[list[str]],
    *,
    window: int = 5,
    abbreviations: bool = True,
    consistency: bool = True,
    min_ratio: float = 0.67,
    min_chars: int = 3,
) -> list[list[str]]:
    """``postprocess_words`` for corpora without document markers (e.g. the IOB files).

    Each sentence is post-processed with its ``window`` neighbours on either side as its
    pseudo-document; only that sentence's result is kept.
    """
    result: list[list[str]] = []
    for i in range(len(words)):
        lo, hi = max(0, i - window), min(len(words), i + window + 1)
        doc = postprocess_words(
            words[lo:hi],
            tags[lo:hi],
            abbreviations=abbreviations,
            consistency=consistency,
            min_ratio=min_ratio,
            min_chars=min_chars,
        )
        result.append(doc[i - lo])
    return result


def _occurrences(text: str, needle: str) -> list[int]:
    """Start offsets of case-insensitive, word-bounded occurrences of needle in text."""
    pattern = re.compile(
        r"(?<![A-Za-z0-9])" + re.escape(needle) + r"(?![A-Za-z0-9])", re.IGNORECASE
    )
    return [m.start() for m in pattern.finditer(text)]


def postprocess_spans(
    text: str,
    spans: list[TaggedSpan],
    *,
    abbreviations: bool = True,
    consistency: bool = True,
    min_ratio: float = 0.67,
    min_chars: int = 3,
) -> list[TaggedSpan]:
    """The same rules on character spans of one text, per tagging head; result sorted by start.

    ``spans`` are what ``NERTagger.tag_text`` returns for ``text``; new spans are built with
    ``dataclasses.replace`` from a span of the same head. Abbreviations match case
    sensitively, surface strings case-insensitively (as the word view lower-cases them).
    """
    by_head: dict[str, list[TaggedSpan]] = defaultdict(list)
    for sp in spans:
        by_head[sp.head].append(sp)
    result: list[TaggedSpan] = []
    for head_spans in by_head.values():
        result.extend(
            _postprocess_head(text, head_spans, abbreviations, consistency, min_ratio, min_chars)
        )
    return sorted(result, key=lambda s: (s.start, s.end, s.head))


def _postprocess_head(
    text: str,
    spans: list[TaggedSpan],
    abbreviations: bool,
    consistency: bool,
    min_ratio: float,
    min_chars: int,
) -> list[TaggedSpan]:
    current: list[TaggedSpan] = sorted(spans, key=lambda s: s.start)
    proto = current[0]

    def free(a: int, b: int) -> bool:
        return all(sp.end <= a or sp.start >= b for sp in current)

    if abbreviations:
        defs: dict[str, str] = {}
        for sp in list(current):
            m = _PAREN_ABBR.match(text, sp.end)
            if (
                m
                and is_abbreviation(m.group(1))
                and m.group(1) not in defs
                and matches_long_form(m.group(1), text[sp.start : sp.end])
            ):
                defs[m.group(1)] = sp.label
        for abbr, label in defs.items():
            pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(abbr) + r"(?![A-Za-z0-9])")
            for m in pattern.finditer(text):
                a, b = m.start(), m.end()
                same = [sp for sp in current if sp.start == a and sp.end == b]
                if same:
                    current = [replace(sp, label=label) if sp in same else sp for sp in current]
                elif free(a, b):
                    current.append(replace(proto, start=a, end=b, label=label))
    if consistency:
        typed: dict[str, Counter[str]] = defaultdict(Counter)
        for sp in current:
            typed[text[sp.start : sp.end].lower()][sp.label] += 1
        keys = [k for k in typed if len(k) >= min_chars and _WORD_CHAR.search(k)]
        keys.sort(key=len, reverse=True)
        for key in keys:
            hits = [a for a in _occurrences(text, key) if free(a, a + len(key))]
            tagged = typed[key].total()
            if not hits or tagged / (tagged + len(hits)) < min_ratio:
                continue
            label = typed[key].most_common(1)[0][0]
            for a in hits:
                b = a + len(key)
                if free(a, b):
                    current.append(replace(proto, start=a, end=b, label=label))
    return current
