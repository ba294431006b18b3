"""The STOW-RS response (PS3.18 Annex I) as DICOM JSON, and what a delivery looks like."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DICOM_JSON = "application/dicom+json"


class DicomAttribute(BaseModel):
    """One attribute in the DICOM JSON model (PS3.18 F.2): its VR and, when not empty, values."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    vr: str = Field(description="Value representation, e.g. `UI`, `US`, `UR`")
    value: list[Any] | None = Field(default=None, alias="Value")


class StowInstance(BaseModel):
    """One instance of the request: stored (with the analysis it became) or failed (with why).

    MedSight adds a private block (creator `MEDSIGHT` in group 0099): `00991001` the analysis
    (`session_id`), `00991002` its queue task (`task_id`, for `GET /api/v1/analyze/status/...`),
    `00991003` why a failed instance was refused, in words.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    referenced_sop_class_uid: DicomAttribute | None = Field(default=None, alias="00081150")
    referenced_sop_instance_uid: DicomAttribute | None = Field(default=None, alias="00081155")
    retrieve_url: DicomAttribute | None = Field(default=None, alias="00081190")
    failure_reason: DicomAttribute | None = Field(
        default=None,
        alias="00081197",
        description="Failed instances: 0xA700 out of resources (too large, too many), 0xA900 "
        "the data set does not match its SOP class, 0xC000 cannot understand, 0xC122 transfer "
        "syntax not supported, 0x0122 SOP class (not a single-frame radiograph) not supported, "
        "0x0110 processing failure",
    )


class StowSequence(BaseModel):
    vr: Literal["SQ"]
    value: list[StowInstance] = Field(default_factory=list, alias="Value")

    model_config = ConfigDict(populate_by_name=True)


class StowResponse(BaseModel):
    """Store Instances Response Module (PS3.18 Table I.1-1) in DICOM JSON."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    retrieve_url: DicomAttribute | None = Field(
        default=None, alias="00081190", description="Empty: MedSight does not serve WADO-RS"
    )
    failed_sop_sequence: StowSequence | None = Field(
        default=None, alias="00081198", description="Instances that were not accepted"
    )
    referenced_sop_sequence: StowSequence | None = Field(
        default=None, alias="00081199", description="Instances accepted and queued for analysis"
    )


def stow_responses() -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the DICOM JSON answers (200 all, 202 some, 409 none accepted)."""
    content = {DICOM_JSON: {"schema": {"$ref": "#/components/schemas/StowResponse"}}}
    return {
        200: {"description": "Every instance was accepted and queued", "content": content},
        202: {
            "description": "Some instances were accepted; the others are in the Failed SOP "
            "Sequence (0008,1198) with their Failure Reason",
            "content": content,
        },
        409: {
            "description": "No instance was accepted (each one's reason is in the Failed SOP "
            "Sequence)",
            "content": content,
        },
    }
