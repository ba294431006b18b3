"""Symptom and medication vocabularies (data files) and their medspaCy target rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class SymptomEntry:
    """One canonical symptom with its regex patterns and the broader entries it implies."""

    name: str
    mesh: str
    patterns: tuple[str, ...]
    implies: tuple[str, ...]


def _bounded(pattern: str) -> str:
    return rf"(?<![\w-])(?:{pattern})(?![\w-])"


@cache
def load_symptoms(path: Path = DATA_DIR / "symptoms.json") -> dict[str, SymptomEntry]:
    """Canonical symptom name -> entry."""
    raw = json.loads(path.read_text(encoding="utf-8"))["symptoms"]
    return {
        name: SymptomEntry(
            name=name,
            mesh=str(spec.get("mesh", "")),
            patterns=tuple(spec["patterns"]),
            implies=tuple(spec.get("implies", [])),
        )
        for name, spec in raw.items()
    }


@cache
def load_medications(path: Path = DATA_DIR / "medications.json") -> dict[str, str]:
    """Medication name (lower case) -> drug class."""
    raw = json.loads(path.read_text(encoding="utf-8"))["medications"]
    return {name.lower(): cls for cls, names in raw.items() for name in names}


class SymptomMatcher:
    """Finds symptom mentions with one compiled alternation per canonical symptom."""

    def __init__(self, symptoms: dict[str, SymptomEntry]) -> None:
        self.symptoms = symptoms
        self._compiled = [
            (name, re.compile("|".join(_bounded(p) for p in e.patterns), re.IGNORECASE))
            for name, e in symptoms.items()
        ]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, canonical) for every match, overlapping ones included."""
        out: list[tuple[int, int, str]] = []
        for name, rx in self._compiled:
            for m in rx.finditer(text):
                if m.end() > m.start():
                    out.append((m.start(), m.end(), name))
        return out

    def expand(self, names: set[str]) -> set[str]:
        """Add the broader entries implied by each name."""
        out = set(names)
        for n in names:
            entry = self.symptoms.get(n)
            if entry:
                out.update(entry.implies)
        return out


class MedicationMatcher:
    """Whole-word, case-insensitive match of listed medication names (longest first).

    Names are looked up as word n-grams in a set, which is much faster than one regex
    alternation over a few hundred names.
    """

    _WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")

    def __init__(self, medications: dict[str, str]) -> None:
        self.medications = medications
        self._names = {self._key(n) for n in medications}
        self._max_words = max((len(self._WORD.findall(n)) for n in medications), default=1)
        self._canonical = {self._key(n): n for n in medications}

    @classmethod
    def _key(cls, text: str) -> str:
        return " ".join(w.lower() for w in cls._WORD.findall(text))

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, canonical name) per match, longest match first at each word."""
        words = list(self._WORD.finditer(text))
        out: list[tuple[int, int, str]] = []
        i = 0
        while i < len(words):
            for n in range(min(self._max_words, len(words) - i), 0, -1):
                key = " ".join(w.group(0).lower() for w in words[i : i + n])
                if key in self._names:
                    out.append((words[i].start(), words[i + n - 1].end(), self._canonical[key]))
                    i += n
                    break
            else:
                i += 1
        return out
