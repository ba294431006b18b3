"""Data types of the clinical NLP stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

GROUPS: dict[str, str] = {
    "disease": "diseases",
    "symptom": "symptoms",
    "medication": "medications",
    "anatomy": "anatomy",
}


class TextEmbedder(Protocol):
    """Sentence encoder: (n, 384) float32 rows, L2-normalised."""

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class Entity:
    """One entity mention with its ConText assertions."""

    text: str
    start: int
    end: int
    label: str  # "disease" | "symptom" | "medication" | "anatomy"
    negated: bool
    uncertain: bool
    historical: bool
    family: bool
    concept: str | None = None  # canonical vocabulary entry (symptoms, listed medications)
    source: str = "ner"  # "ner" (trained model) or "rules" (vocabulary target rules)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


def empty_groups() -> dict[str, list[Entity]]:
    """The four entity groups, empty."""
    return {g: [] for g in GROUPS.values()}


@dataclass(frozen=True)
class NLPResult:
    """Entities grouped by type plus the zero-shot condition ranking."""

    entities: dict[str, list[Entity]] = field(default_factory=empty_groups)
    primary_diagnosis: str | None = None
    diagnosis_confidence: float = 0.0
    differential: list[dict[str, Any]] = field(default_factory=list)
    ranking_method: str = "none"  # "embedding+entities" | "rules+entities" | "none"

    def affirmed(self, group: str) -> list[Entity]:
        """Entities of a group present now: not negated, uncertain, historical or family."""
        return [
            e
            for e in self.entities.get(group, [])
            if not (e.negated or e.uncertain or e.historical or e.family)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {
            "entities": {g: [e.to_dict() for e in ents] for g, ents in self.entities.items()},
            "primary_diagnosis": self.primary_diagnosis,
            "diagnosis_confidence": self.diagnosis_confidence,
            "differential": [dict(d) for d in self.differential],
            "ranking_method": self.ranking_method,
        }
