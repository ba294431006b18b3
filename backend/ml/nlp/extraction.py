"""Entity extraction: trained NER + vocabulary target rules, then medspaCy ConText assertions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from backend.ml.nlp.ner_post import postprocess_spans
from backend.ml.nlp.types import GROUPS, Entity, empty_groups
from backend.ml.nlp.vocab import (
    MedicationMatcher,
    SymptomMatcher,
    load_medications,
    load_symptoms,
)

if TYPE_CHECKING:
    from backend.ml.nlp.ner_model import NERTagger

logger = logging.getLogger(__name__)

# Trained head/type -> product group.
NER_LABELS: dict[tuple[str, str], str] = {
    ("bc5cdr", "Disease"): "disease",
    ("bc5cdr", "Chemical"): "medication",
    ("ncbi", "Disease"): "disease",
    ("anatem", "Anatomy"): "anatomy",
}
# When two candidates cover the same text, vocabulary rules win (they carry a concept).
_PRIORITY = {"rules": 2, "ner": 1}


@dataclass(frozen=True)
class Candidate:
    """A span proposed by the NER model or by a target rule."""

    start: int
    end: int
    label: str
    source: str
    concept: str | None = None


def resolve_overlaps(cands: list[Candidate]) -> list[Candidate]:
    """Keep non-overlapping spans: longest first, then rules before NER, then leftmost."""
    order = sorted(cands, key=lambda c: (-(c.end - c.start), -_PRIORITY[c.source], c.start))
    kept: list[Candidate] = []
    for c in order:
        if all(c.end <= k.start or c.start >= k.end for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c.start)


def _relabel_symptom_diseases(
    cands: list[Candidate], symptom_hits: list[tuple[int, int, str]]
) -> list[Candidate]:
    """A NER "disease" that is mostly a listed symptom ("severe chest pain") becomes a symptom.

    BC5CDR annotates signs and symptoms as Disease, so the model cannot tell them apart.
    """
    out: list[Candidate] = []
    for c in cands:
        if c.source == "ner" and c.label == "disease":
            best: tuple[int, str] | None = None
            for s, e, name in symptom_hits:
                overlap = min(e, c.end) - max(s, c.start)
                if overlap > 0 and overlap * 2 >= (c.end - c.start):
                    if best is None or overlap > best[0]:
                        best = (overlap, name)
            if best is not None:
                out.append(Candidate(c.start, c.end, "symptom", "ner", best[1]))
                continue
        out.append(c)
    return out


class EntityExtractor:
    """Runs the extraction pipeline on one text and returns grouped :class:`Entity` lists."""

    def __init__(self, tagger: NERTagger | None) -> None:
        from loguru import logger as loguru_logger

        # medspaCy's PyRuSH logs at DEBUG on every call (MODELS.md).
        loguru_logger.disable("PyRuSH")
        import medspacy

        if not Span.has_extension("medsight"):
            Span.set_extension("medsight", default=None)
        self.tagger = tagger
        self.symptoms = SymptomMatcher(load_symptoms())
        self.medications = MedicationMatcher(load_medications())
        # PyRuSH took 50-80 ms per 500 characters here; spaCy's rule sentencizer takes <1 ms
        # and is enough for ConText, whose scope ends at sentence boundaries.
        nlp: Language = medspacy.load(medspacy_enable=["medspacy_context"])
        nlp.add_pipe("sentencizer", first=True)
        context: Any = nlp.get_pipe("medspacy_context")
        context.add(extra_context_rules())
        self.nlp = nlp
        self.abbreviations = _abbreviation_detector(nlp)

    def candidates(self, text: str) -> tuple[list[Candidate], list[tuple[int, int, str]]]:
        """All proposed spans (before overlap resolution) and the raw symptom hits."""
        cands: list[Candidate] = []
        if self.tagger is not None:
            spans = self.tagger.tag_text(text)
            post = self.tagger.metadata.get("postprocess")
            if post:  # the rules the model was evaluated with (metadata.json "postprocess")
                spans = postprocess_spans(
                    text,
                    spans,
                    abbreviations=bool(post.get("abbreviations")),
                    consistency=bool(post.get("consistency")),
                    min_ratio=float(post.get("min_ratio", 0.67)),
                )
            for span in spans:
                group = NER_LABELS.get((span.head, span.label))
                if group is not None:
                    cands.append(Candidate(span.start, span.end, group, "ner"))
        symptom_hits = self.symptoms.find(text)
        cands = _relabel_symptom_diseases(cands, symptom_hits)
        cands.extend(Candidate(s, e, "symptom", "rules", n) for s, e, n in symptom_hits)
        cands.extend(
            Candidate(s, e, "medication", "rules", n) for s, e, n in self.medications.find(text)
        )
        return cands, symptom_hits

    def make_doc(self, text: str) -> Doc:
        """Tokenised doc with entities set and ConText applied."""
        doc = self.nlp.make_doc(text)
        cands, _ = self.candidates(text)
        cands = self._add_abbreviation_mentions(doc, resolve_overlaps(cands))
        spans: list[Span] = []
        for c in resolve_overlaps(cands):
            span = doc.char_span(c.start, c.end, label=c.label.upper(), alignment_mode="expand")
            if span is None or not span.text.strip():
                continue
            if spans and span.start < spans[-1].end:
                continue  # token alignment merged two neighbours; keep the first
            span._.set("medsight", (c.source, c.concept))
            spans.append(span)
        doc.ents = spans
        for _, proc in self.nlp.pipeline:
            doc = proc(doc)
        return doc

    def _add_abbreviation_mentions(self, doc: Doc, cands: list[Candidate]) -> list[Candidate]:
        """Give a short form ("COPD") the label of its long form when the long form is an entity."""
        if self.abbreviations is None or not cands:
            return cands
        try:
            self.abbreviations(doc)
        except Exception:  # scispaCy on odd input must never stop extraction
            logger.debug("abbreviation detection failed", exc_info=True)
            return cands
        extra: list[Candidate] = []
        for abrv in doc._.abbreviations:
            long = abrv._.long_form
            for c in cands:
                if c.start <= long.start_char and long.end_char <= c.end + 1:
                    for m in _find_all(doc.text, abrv.text):
                        extra.append(Candidate(m, m + len(abrv.text), c.label, c.source, c.concept))
                    break
        return cands + extra

    def assert_span(self, text: str, start: int, end: int, label: str = "disease") -> Entity:
        """ConText flags for one given span (the only entity), e.g. a term under test."""
        doc = self.nlp.make_doc(text)
        span = doc.char_span(start, end, label=label.upper(), alignment_mode="expand")
        if span is None:
            raise ValueError(f"span {start}:{end} does not align with tokens")
        span._.set("medsight", ("given", None))
        doc.ents = [span]
        for _, proc in self.nlp.pipeline:
            doc = proc(doc)
        return _entity(doc.ents[0], label)

    def extract(self, text: str) -> dict[str, list[Entity]]:
        """Grouped entities of ``text`` with negation/uncertainty/history/family flags."""
        groups = empty_groups()
        if not text.strip():
            return groups
        doc = self.make_doc(text)
        for ent in doc.ents:
            label = ent.label_.lower()
            source, concept = ent._.get("medsight") or ("ner", None)
            groups[GROUPS[label]].append(_entity(ent, label, concept=concept, source=source))
        return groups


def _entity(ent: Span, label: str, **extra: Any) -> Entity:
    """An :class:`Entity` with the ConText flags of a processed span."""
    return Entity(
        text=ent.text,
        start=ent.start_char,
        end=ent.end_char,
        label=label,
        negated=bool(ent._.is_negated),
        uncertain=bool(ent._.is_uncertain or ent._.is_hypothetical),
        historical=bool(ent._.is_historical),
        family=bool(ent._.is_family),
        **extra,
    )


_UNABLE_VERBS = (
    "stop catch shake get seem sleep breathe smell taste focus concentrate eat swallow walk "
    "move lie keep hold remember see hear feel think talk speak climb sit stand"
).split()


def extra_context_rules() -> list[Any]:
    """Uncertainty/negation triggers missing from medspaCy's default English ConText rules.

    They are the usual pyConText lexicon entries for hedged findings ("suspected X", "X was
    suspected", "probable", "may <verb> X"), a backward "was denied", and pseudo-negations of
    lay complaints ("can't catch my breath", "won't go away") that must not deny anything.
    """
    from medspacy.context import ConTextRule

    modal = {"LOWER": {"IN": ["may", "might", "could"]}}
    neg = {"LOWER": {"IN": ["n't", "not"]}}
    # "can't catch my breath", "can't stop coughing", "a cough that won't go away", "haven't
    # been able to sleep": the negation is part of the complaint, not a denial. PSEUDO rules
    # consume the cue so that ConText does not negate what follows.
    unable = {"LOWER": {"IN": list(_UNABLE_VERBS)}}
    pseudo = [
        ConTextRule(
            "can't <verb>",
            "PSEUDO_NEGATION",
            pattern=[{"LOWER": {"IN": ["ca", "can", "could", "wo", "would"]}}, neg, unable],
            direction="PSEUDO",
        ),
        ConTextRule(
            "doesn't go away",
            "PSEUDO_NEGATION",
            pattern=[
                {"LOWER": {"IN": ["do", "does", "did", "wo", "will", "has", "have"]}},
                neg,
                {"LOWER": {"IN": ["go", "stop", "improve", "improved", "ease", "settle", "clear"]}},
            ],
            direction="PSEUDO",
        ),
        ConTextRule(
            "haven't been able",
            "PSEUDO_NEGATION",
            pattern=[
                {"LOWER": {"IN": ["have", "has", "had", "was", "were", "am", "is"]}},
                neg,
                {"LOWER": "been", "OP": "?"},
                {"LOWER": "able"},
            ],
            direction="PSEUDO",
        ),
    ]
    return pseudo + [
        ConTextRule("suspected", "POSSIBLE_EXISTENCE", direction="BIDIRECTIONAL", max_scope=6),
        ConTextRule("suspicious for", "POSSIBLE_EXISTENCE", direction="FORWARD", max_scope=8),
        ConTextRule("probable", "POSSIBLE_EXISTENCE", direction="BIDIRECTIONAL", max_scope=5),
        ConTextRule("questionable", "POSSIBLE_EXISTENCE", direction="FORWARD", max_scope=6),
        ConTextRule(
            "may", "POSSIBLE_EXISTENCE", pattern=[modal], direction="FORWARD", max_scope=10
        ),
        ConTextRule(
            "was denied",
            "NEGATED_EXISTENCE",
            pattern=[{"LOWER": {"IN": ["was", "were", "is", "are"]}}, {"LOWER": "denied"}],
            direction="BACKWARD",
            max_scope=6,
        ),
    ]


def _find_all(text: str, needle: str) -> list[int]:
    import re

    return [m.start() for m in re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)", text)]


def _abbreviation_detector(nlp: Language) -> Any:
    """scispaCy's AbbreviationDetector (Schwartz & Hearst), or None if scispaCy is missing."""
    try:
        from scispacy.abbreviation import AbbreviationDetector
    except ImportError:  # optional: extraction works without it
        logger.info("scispaCy not installed; abbreviation propagation disabled")
        return None
    return AbbreviationDetector(nlp)
