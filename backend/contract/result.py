"""The analysis result: one versioned model, built by the pipeline's last stage, stored as JSON,
served as the response, and read as an object by the PDF, FHIR, chat, viewer and PACS writer.

Field names follow the seed's clients (`risk_level`/`final_risk` LOW|MEDIUM|HIGH, differential
items `{disease, confidence}`, `heatmap_base64` as a data URI usable as `<img src>`); what
MedSight adds beyond the seed is kept beside them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backend.contract.enums import Alignment, OverallStatus, RiskLevel, StageOutcome

SCHEMA_VERSION: Final = 2

DISCLAIMER = (
    "MedSight is a decision-support tool, not a diagnosis. Every result must be reviewed by a "
    "qualified clinician before it informs care."
)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC, so say so on the wire.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class _Model(BaseModel):
    # Unknown keys in stored results are ignored rather than served unvalidated.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Region(_Model):
    """A box around one of the most anomalous areas, in pixels of the uploaded image."""

    x: float = Field(description="Left edge (pixels from the image's left side)")
    y: float = Field(description="Top edge (pixels from the image's top)")
    width: float = Field(ge=0, description="Box width in pixels")
    height: float = Field(ge=0, description="Box height in pixels")
    confidence: float = Field(ge=0, le=1, description="Relative strength of the anomaly, 0-1")


class VisionFindings(_Model):
    """Stage 2: the image anomaly score, its parts and where in the image it comes from."""

    anomaly_score: float = Field(
        ge=0, le=100, description="0-100; higher is less like the normal reference", examples=[71.4]
    )
    risk_level: RiskLevel = Field(
        description="HIGH at or above `threshold`; MEDIUM where validation sensitivity reaches "
        "95%; LOW below"
    )
    threshold: float = Field(description="Decision threshold on the same 0-100 scale")
    components: dict[str, dict[str, float | None]] = Field(
        default_factory=dict,
        description="Parts of the fused score (e.g. `patch`, `knn`), each with its raw `value` "
        "and its `z` score against the normal reference",
    )
    heatmap_base64: str | None = Field(
        default=None,
        description="The explanation panels (original | heatmap | overlay) as a data URI "
        "(`data:image/jpeg;base64,...`) usable as `<img src>`; present with `?heatmap=inline`",
    )
    heatmap_url: str | None = Field(
        default=None,
        description="Link to the same image as its own resource; present with `?heatmap=url`",
    )
    heatmap_media_type: str | None = Field(
        default=None, description="Media type of the heatmap image", examples=["image/jpeg"]
    )
    top_regions: list[Region] = Field(default_factory=list, description="Up to 3 boxes")
    model_confidence: float = Field(
        ge=0, le=1, description="0 at the threshold, towards 1 far from it; low when unusual input"
    )
    ood_score: float | None = Field(
        default=None, description="How unlike a chest X-ray the image is (higher: less like)"
    )


class Entity(_Model):
    """One mention found in the symptoms text, with how the text asserts it."""

    text: str = Field(description="The words as written", examples=["productive cough"])
    start: int = Field(ge=0, description="Character offset where the mention starts")
    end: int = Field(ge=0, description="Character offset where it ends (exclusive)")
    label: str = Field(default="", description="disease, symptom, medication or anatomy")
    negated: bool = Field(default=False, description="The text denies it (`no fever`)")
    uncertain: bool = Field(default=False, description="The text hedges (`possible pneumonia`)")
    historical: bool = Field(default=False, description="In the past (`history of asthma`)")
    family: bool = Field(default=False, description="About a relative, not the patient")
    concept: str | None = Field(default=None, description="Canonical vocabulary entry")
    source: str = Field(default="ner", description="`ner` (trained model) or `rules`")


class EntityGroups(_Model):
    diseases: list[Entity] = Field(default_factory=list, description="Conditions named")
    symptoms: list[Entity] = Field(default_factory=list, description="Symptoms and signs")
    medications: list[Entity] = Field(default_factory=list, description="Drugs named")
    anatomy: list[Entity] = Field(default_factory=list, description="Body parts named")

    def all(self) -> list[tuple[str, Entity]]:
        """(group, entity) pairs in a stable group order."""
        return [
            (group, entity)
            for group in ("diseases", "symptoms", "medications", "anatomy")
            for entity in getattr(self, group)
        ]


class DifferentialItem(_Model):
    """One ranked condition the symptoms are consistent with."""

    disease: str = Field(description="Condition name", examples=["Pneumonia"])
    confidence: float = Field(ge=0, le=1, description="Relative confidence among the ranked")
    id: str | None = Field(default=None, description="Stable condition id")
    group: str | None = Field(default=None, description="e.g. `pulmonary`")
    score: float | None = Field(default=None, description="Raw ranking score")
    evidence: list[str] = Field(default_factory=list, description="What in the text matched")


class NlpFindings(_Model):
    """Stage 4: entities in the symptoms text and a ranked differential."""

    entities: EntityGroups = Field(default_factory=EntityGroups)
    primary_diagnosis: str | None = Field(
        default=None, description="Top of the differential, if any"
    )
    diagnosis_confidence: float = Field(
        default=0.0, ge=0, le=1, description="Confidence of `primary_diagnosis`, 0-1"
    )
    differential: list[DifferentialItem] = Field(
        default_factory=list, description="Candidate conditions, most likely first"
    )
    ranking_method: str = Field(default="none", description="How the differential was ranked")


class FusionFindings(_Model):
    """Stage 5: whether image and text agree, and the combined risk."""

    image_text_similarity: float = Field(ge=0, le=1, description="Agreement, 0-1")
    alignment: Alignment
    final_risk: RiskLevel = Field(description="The combined triage band")
    final_score: float | None = Field(default=None, ge=0, le=100, description="Combined, 0-100")
    disagreement: bool = Field(
        description="True when image and text point in opposite directions: review both"
    )
    explanation: str = Field(default="", description="How the combination was reached")


class Timings(_Model):
    preprocess_ms: float = Field(default=0.0, description="Decoding and input checks")
    vision_ms: float = Field(default=0.0, description="Anomaly score and heatmap")
    nlp_ms: float = Field(default=0.0, description="Entities and differential")
    fusion_ms: float = Field(default=0.0, description="Image-text agreement")
    report_ms: float = Field(default=0.0, description="Narrative report")
    total_ms: float = Field(default=0.0, description="The whole pipeline")


class ModelInfo(_Model):
    name: str = Field(description="Model name")
    version: str = Field(description="Model version")
    sha256: str | None = Field(default=None, description="SHA-256 of the weights")


class Provenance(_Model):
    """Where the result came from, so that it can be reproduced and audited."""

    image_sha256: str | None = Field(default=None, description="SHA-256 of the uploaded bytes")
    models: dict[str, ModelInfo] = Field(default_factory=dict, description="By role")
    threshold: float | None = Field(default=None, description="Vision decision threshold used")
    code_version: str = Field(default="", description="MedSight version that produced it")
    calibration: dict[str, Any] | None = Field(
        default=None, description="The site calibration in use (file hash, date, images)"
    )


class ImageInfo(_Model):
    format: str = Field(description="png, jpeg or dicom", examples=["png"])
    width: int = Field(description="Pixels")
    height: int = Field(description="Pixels")


class AnalysisResult(_Model):
    """The result of one analysis. Decision support, not a diagnosis."""

    schema_version: Literal[2] = Field(
        default=SCHEMA_VERSION,
        description="Version of this shape; results of older versions are upgraded when read",
    )
    session_id: str = Field(description="The analysis id (the seed's name for it)")
    task_id: str = Field(default="", description="The queue job that produced it")
    patient_ref: str | None = Field(default=None, description="Your reference, as submitted")
    created_at: UtcDatetime | None = Field(default=None, description="When it was submitted")
    completed_at: UtcDatetime | None = Field(default=None, description="When it finished")
    overall_status: OverallStatus = Field(
        description="COMPLETE; PARTIAL when a stage failed or withheld its output; FAILED"
    )
    stages: dict[str, StageOutcome] = Field(
        default_factory=dict, description="Each stage's outcome, by stage name"
    )
    image: ImageInfo | None = Field(default=None, description="The decoded image")
    vision: VisionFindings | None = Field(default=None, description="Absent if vision failed")
    nlp: NlpFindings | None = Field(default=None, description="Absent without symptoms text")
    fusion: FusionFindings | None = Field(default=None, description="Image and text combined")
    report_text: str = Field(default="", description="Narrative summary for the clinician")
    timings: Timings = Field(default_factory=Timings)
    warnings: list[str] = Field(
        default_factory=list, description="Read these first: what limits this result"
    )
    provenance: Provenance = Field(default_factory=Provenance)
    disclaimer: str = Field(default=DISCLAIMER, description="Decision support, not a diagnosis")

    @property
    def final_risk(self) -> RiskLevel | None:
        """The combined risk where the text was analysed, else the image's."""
        if self.fusion is not None:
            return self.fusion.final_risk
        if self.vision is not None:
            return self.vision.risk_level
        return None

    @property
    def anomaly_score(self) -> float | None:
        return self.vision.anomaly_score if self.vision is not None else None

    def heatmap_bytes(self) -> tuple[bytes, str] | None:
        """The heatmap image and its media type, decoded from the data URI."""
        from backend.contract.heatmap import decode_data_uri

        if self.vision is None or not self.vision.heatmap_base64:
            return None
        return decode_data_uri(self.vision.heatmap_base64)
