"""Condition profiles: the data the zero-shot ranker matches patient text against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from backend.ml.nlp.vocab import DATA_DIR

DEFAULT_PROFILES = DATA_DIR / "conditions.json"


@dataclass(frozen=True)
class ConditionProfile:
    """One condition: names, symptom phrases, descriptions, lay vignettes, key symptoms."""

    id: str
    name: str
    group: str
    labels: tuple[str, ...]
    symptoms: tuple[str, ...]
    descriptions: tuple[str, ...]
    key_symptoms: tuple[str, ...]
    sources: tuple[str, ...]
    vignettes: tuple[str, ...] = ()  # authored first-person lay descriptions (see data README)

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every text the embedding matcher compares against."""
        return self.symptoms + self.descriptions + self.vignettes

    def matches_label(self, label: str) -> bool:
        """True if a dataset label names this condition (case-insensitive)."""
        norm = label.strip().lower()
        return norm in {self.id.lower(), self.name.lower(), *(x.lower() for x in self.labels)}


def load_profiles(path: Path = DEFAULT_PROFILES) -> list[ConditionProfile]:
    """Read a profiles JSON file (``{"conditions": [...]}``)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    out: list[ConditionProfile] = []
    for c in raw["conditions"]:
        out.append(
            ConditionProfile(
                id=c["id"],
                name=c["name"],
                group=c.get("group", "general"),
                labels=tuple(c.get("labels", [])),
                symptoms=tuple(c.get("symptoms", [])),
                descriptions=tuple(c.get("descriptions", [])),
                key_symptoms=tuple(c.get("key_symptoms", [])),
                sources=tuple(c.get("sources", [])),
                vignettes=tuple(c.get("vignettes", [])),
            )
        )
    ids = [p.id for p in out]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate condition ids in {path}")
    return out


def profile_for_label(profiles: list[ConditionProfile], label: str) -> ConditionProfile | None:
    """The profile a dataset label refers to, if any."""
    for p in profiles:
        if p.matches_label(label):
            return p
    return None
