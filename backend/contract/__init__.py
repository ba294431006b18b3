"""The analysis contract: the typed result and its vocabularies, shared by every face.

Pure pydantic, importing nothing else of MedSight, so every layer may depend on it.
"""

from backend.contract.enums import (
    FINAL_STATUSES,
    Alignment,
    AnalysisStatus,
    HeatmapMode,
    OverallStatus,
    RiskLevel,
    StageOutcome,
)
from backend.contract.legacy import load_result
from backend.contract.result import (
    DISCLAIMER,
    SCHEMA_VERSION,
    AnalysisResult,
    DifferentialItem,
    Entity,
    EntityGroups,
    FusionFindings,
    ImageInfo,
    ModelInfo,
    NlpFindings,
    Provenance,
    Region,
    Timings,
    UtcDatetime,
    VisionFindings,
)

__all__ = [
    "DISCLAIMER",
    "FINAL_STATUSES",
    "SCHEMA_VERSION",
    "Alignment",
    "AnalysisResult",
    "AnalysisStatus",
    "DifferentialItem",
    "Entity",
    "EntityGroups",
    "FusionFindings",
    "HeatmapMode",
    "ImageInfo",
    "ModelInfo",
    "NlpFindings",
    "OverallStatus",
    "Provenance",
    "Region",
    "RiskLevel",
    "StageOutcome",
    "Timings",
    "UtcDatetime",
    "VisionFindings",
    "load_result",
]
