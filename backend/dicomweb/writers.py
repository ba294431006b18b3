"""What goes back to the PACS for one analysis: a DICOM SR and a heatmap Secondary Capture.

Both are filed into the source image's study (new series, UIDs fixed by the outbox row), carry
the source's patient and study attributes, and reference the source image. Built in a thread:
pure CPU, no I/O.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime

from pydicom.dataset import Dataset

from backend.contract import AnalysisResult

MANUFACTURER = "MedSight"
SR_SERIES_NUMBER = 9001
IMAGE_SERIES_NUMBER = 9002
# Private coding scheme of MedSight's own concepts (PS3.16 8.2: "99" prefixes are private).
SCHEME = "99MEDSIGHT"
SCHEME_NAME = "MedSight AI concepts"


class WriterError(Exception):
    """The result or the source image cannot make a valid DICOM object (a retry will not help)."""


@dataclass(frozen=True)
class Targets:
    """Where the results go: the source's study, and the UIDs fixed for them at submission."""

    study_instance_uid: str
    sr_series_uid: str
    sr_instance_uid: str
    image_series_uid: str
    image_instance_uid: str


def read_source(data: bytes) -> Dataset:
    """The source image's attributes, without its pixel data."""
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - a stored upload that no longer parses
        raise WriterError(f"the source image cannot be read ({type(exc).__name__})") from exc
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not str(ds.get(keyword, "") or ""):
            raise WriterError(f"the source image has no {keyword}")
    return ds


def content_time(result: AnalysisResult) -> datetime:
    """When the result was made (fixed, so that a retry rebuilds identical objects)."""
    return result.completed_at or result.created_at or datetime.now(UTC)


def result_instances(source: bytes, result: AnalysisResult, targets: Targets) -> list[bytes]:
    """The SR and the heatmap image, as DICOM files (Part 10 bytes)."""
    from backend.dicomweb.capture import heatmap_capture
    from backend.dicomweb.sr import measurement_report

    ds = read_source(source)
    if str(ds.StudyInstanceUID) != targets.study_instance_uid:
        raise WriterError("the stored image is not in the study it was received in")
    try:
        sr = measurement_report(ds, result, targets)
        image = heatmap_capture(ds, result, targets)
    except WriterError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        # highdicom validates what it builds: the source lacks something it requires. Its
        # message may quote attribute values (patient data): only the type is kept.
        raise WriterError(
            f"the source image lacks what a DICOM SR or image needs ({type(exc).__name__})"
        ) from exc
    return [to_bytes(sr), to_bytes(image)]


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def stamp(ds: Dataset, when: datetime, description: str) -> None:
    """Series/content dates from the result's time, a description, the private scheme."""
    when = when.astimezone(UTC)
    ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = when.strftime("%H%M%S")
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.SeriesDescription = description[:64]
    ds.InstanceCreationDate = ds.ContentDate
    ds.InstanceCreationTime = ds.ContentTime
    # highdicom stamps these with the time of the build; a retry must rebuild the same bytes.
    for equipment in ds.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = when.strftime("%Y%m%d%H%M%S")
    if "TimeOfSecondaryCapture" in ds:
        ds.DateOfSecondaryCapture = ds.ContentDate
        ds.TimeOfSecondaryCapture = ds.ContentTime
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = SCHEME_NAME
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    ds.CodingSchemeIdentificationSequence = [scheme]


def source_reference(source: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return ref
