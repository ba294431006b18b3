"""STOW-RS bookkeeping: which instance of a request went where, and the DICOM JSON answer."""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from backend.errors import AppError

logger = logging.getLogger(__name__)

_DEFLATED = "1.2.840.10008.1.2.1.99"
PRIVATE_CREATOR = "MEDSIGHT"
PRIVATE_GROUP = 0x0099


class FailureReason(IntEnum):
    """PS3.18 Table I.2-2."""

    OUT_OF_RESOURCES = 0xA700
    DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    PROCESSING_FAILURE = 0x0110
    SOP_CLASS_NOT_SUPPORTED = 0x0122


# The decoder's refusals (backend/imaging), by the reason a STOW-RS client understands.
_REASONS = {
    "dicom_unsupported_modality": FailureReason.SOP_CLASS_NOT_SUPPORTED,
    "dicom_no_pixels": FailureReason.SOP_CLASS_NOT_SUPPORTED,
    "dicom_multiframe": FailureReason.SOP_CLASS_NOT_SUPPORTED,
    "dicom_unsupported_transfer_syntax": FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
    "dicom_frame_mismatch": FailureReason.DOES_NOT_MATCH_SOP_CLASS,
    "dicom_missing_uids": FailureReason.DOES_NOT_MATCH_SOP_CLASS,
    "image_too_large": FailureReason.OUT_OF_RESOURCES,
    "image_too_many_pixels": FailureReason.OUT_OF_RESOURCES,
    "image_decoded_too_large": FailureReason.OUT_OF_RESOURCES,
}


def failure_reason(error: AppError) -> FailureReason:
    if error.code in _REASONS:
        return _REASONS[error.code]
    if error.status_code == 413:
        return FailureReason.OUT_OF_RESOURCES
    if error.status_code >= 500:
        return FailureReason.PROCESSING_FAILURE
    return FailureReason.CANNOT_UNDERSTAND


@dataclass(frozen=True, repr=False)
class InstanceId:
    """The identifiers of one received instance (empty strings where it has none)."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""

    def __repr__(self) -> str:  # UIDs can be traced to a patient: never in logs
        return "InstanceId(identifiers hidden)"


def identify(data: bytes) -> InstanceId:
    """SOP class, SOP instance and study UIDs from a DICOM file's header, as far as readable.

    Reads only the header (no pixel data), and not at all when the dataset is deflated: its
    inflation is bounded by the decoder (backend/imaging), which names the instance instead.
    """
    import pydicom
    from pydicom import config

    if len(data) < 132 or data[128:132] != b"DICM" or _transfer_syntax(data) == _DEFLATED:
        return InstanceId()
    config.settings.reading_validation_mode = config.IGNORE
    try:
        ds = pydicom.dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"],
        )
        return InstanceId(
            sop_class_uid=_uid(ds.get("SOPClassUID")),
            sop_instance_uid=_uid(ds.get("SOPInstanceUID")),
            study_instance_uid=_uid(ds.get("StudyInstanceUID")),
        )
    except Exception:  # noqa: BLE001 - hostile input: any parse error means "unreadable"
        return InstanceId()


def _uid(value: Any) -> str:
    text = str(value or "").strip().rstrip("\0")
    # A UID is at most 64 characters of digits and dots (PS3.5 9.1).
    if len(text) > 64 or not text or any(c not in "0123456789." for c in text):
        return ""
    return text


def _transfer_syntax(data: bytes) -> str:
    """Transfer Syntax UID (0002,0010) from explicit-VR file meta, without a DICOM library."""
    pos = 132
    while pos + 8 <= len(data) and pos < 132 + 64 * 1024:
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            return ""
        vr = data[pos + 4 : pos + 6]
        if vr in {b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"}:
            (length,) = struct.unpack_from("<I", data, pos + 8) if pos + 12 <= len(data) else (0,)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if elem == 0x0010:
            return data[start : start + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    return ""


@dataclass
class Accepted:
    instance: InstanceId
    analysis_id: str
    task_id: str


@dataclass
class Refused:
    instance: InstanceId
    reason: FailureReason
    detail: str


@dataclass
class StowOutcome:
    """What became of each instance of one request, in order."""

    accepted: list[Accepted] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.accepted) + len(self.refused)

    @property
    def status_code(self) -> int:
        """200 all stored, 202 some, 409 none (PS3.18 Table 10.5.3-1)."""
        if not self.refused:
            return 200
        return 202 if self.accepted else 409

    def to_json(self) -> dict[str, Any]:
        """The Store Instances Response Module (PS3.18 Annex I) as DICOM JSON."""
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.RetrieveURL = None  # type 2: MedSight does not serve WADO-RS
        if self.refused:
            ds.FailedSOPSequence = [
                _item(r.instance, reason=r.reason, detail=r.detail) for r in self.refused
            ]
        if self.accepted:
            ds.ReferencedSOPSequence = [
                _item(a.instance, analysis_id=a.analysis_id, task_id=a.task_id)
                for a in self.accepted
            ]
        result: dict[str, Any] = ds.to_json_dict()
        return result


def _item(
    instance: InstanceId,
    *,
    reason: FailureReason | None = None,
    detail: str = "",
    analysis_id: str = "",
    task_id: str = "",
) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    # Type 1 in the SOP Instance Reference Macro; left out only when the part was unreadable.
    if instance.sop_class_uid:
        item.ReferencedSOPClassUID = instance.sop_class_uid
    if instance.sop_instance_uid:
        item.ReferencedSOPInstanceUID = instance.sop_instance_uid
    if reason is not None:
        item.FailureReason = int(reason)
    else:
        item.RetrieveURL = None
    block = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    if analysis_id:
        block.add_new(0x01, "LO", analysis_id)
        block.add_new(0x02, "LO", task_id)
    if detail:
        block.add_new(0x03, "LT", detail[:1000])
    return item
