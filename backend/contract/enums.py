"""The closed vocabularies of the analysis contract: statuses, risk levels, alignments."""

from __future__ import annotations

from enum import StrEnum


class AnalysisStatus(StrEnum):
    """Where an analysis is in its life (lower case: the seed's `status`)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def has_result(self) -> bool:
        """Finished with a result to read (cancelled analyses have none)."""
        return self in _FINAL and self is not AnalysisStatus.CANCELLED


_FINAL = frozenset(
    {
        AnalysisStatus.COMPLETE,
        AnalysisStatus.PARTIAL,
        AnalysisStatus.FAILED,
        AnalysisStatus.CANCELLED,
    }
)
FINAL_STATUSES: frozenset[str] = frozenset(s.value for s in _FINAL)


class OverallStatus(StrEnum):
    """How a finished analysis went (upper case: the seed's `overall_status`)."""

    COMPLETE = "COMPLETE"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"

    @property
    def analysis_status(self) -> AnalysisStatus:
        return AnalysisStatus(self.value.lower())


class RiskLevel(StrEnum):
    """Triage band of a score. Results stored before schema 2 said MODERATE for MEDIUM."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"

    @classmethod
    def _missing_(cls, value: object) -> RiskLevel | None:
        if isinstance(value, str) and value.upper() in {"MODERATE", "MEDIUM"}:
            return cls.MEDIUM
        if isinstance(value, str) and value.upper() in {"LOW", "HIGH"}:
            return cls(value.upper())
        return None

    @property
    def rank(self) -> int:
        return _RISK_RANK[self]


_RISK_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2}


class Alignment(StrEnum):
    """How well the image and the text agree."""

    STRONG = "strong"
    MODERATE = "moderate"
    WEAK = "weak"
    CONFLICT = "conflict"


class StageOutcome(StrEnum):
    """What one pipeline stage did."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing to do, or an input it needs is missing
    WITHHELD = "withheld"  # deliberately no output (e.g. not a chest X-ray)


class HeatmapMode(StrEnum):
    """How a result read carries the heatmap (`?heatmap=`)."""

    INLINE = "inline"  # a data URI in `vision.heatmap_base64`
    URL = "url"  # a link in `vision.heatmap_url`, the image is its own resource
    NONE = "none"  # neither
