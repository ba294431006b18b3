"""What a decode produces and the limits it runs under."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from backend.config import Settings

MiB = 1024 * 1024


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on one upload, checked from its header before any pixel is decoded.

    `max_decoded_bytes` caps the full-resolution frame a decoder must allocate (rows x columns
    x samples x bytes per sample, at the width the decoder really uses); every later step runs
    on a copy no larger than `work_max_side` per side, so a decode's peak memory is a small
    multiple of this cap whatever the file claims.
    """

    max_bytes: int = 20 * MiB
    max_pixels: int = 50_000_000
    min_side: int = 64
    max_decoded_bytes: int = 48 * MiB
    work_max_side: int = 1024
    max_concurrent_decodes: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
            min_side=settings.min_image_side,
            max_decoded_bytes=int(settings.max_decoded_image_mb * MiB),
            max_concurrent_decodes=settings.max_concurrent_decodes,
        )


@dataclass(frozen=True, repr=False)
class DicomInfo:
    """The DICOM attributes a result writer needs to file into the same study.

    Holds identifiers and patient data (PHI): its repr hides them, and nothing here is logged
    or put into an error message.
    """

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    modality: str
    photometric_interpretation: str
    rows: int
    columns: int
    bits_stored: int
    # (row spacing, column spacing) in mm: PixelSpacing, else ImagerPixelSpacing.
    pixel_spacing_mm: tuple[float, float] | None
    pixel_spacing_source: str | None  # "PixelSpacing" | "ImagerPixelSpacing" | None
    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_id: str
    study_date: str
    study_time: str
    accession_number: str
    referring_physician_name: str
    study_description: str
    series_number: str
    instance_number: str
    body_part_examined: str
    view_position: str
    laterality: str
    frame_of_reference_uid: str

    def __repr__(self) -> str:
        return (
            f"DicomInfo(modality={self.modality!r}, {self.columns}x{self.rows}, "
            f"photometric={self.photometric_interpretation!r}, identifiers hidden)"
        )


@dataclass
class DecodedImage:
    """One upload, decoded.

    `pixels` is the working copy the pipeline analyses: 2-D grayscale uint8, at most
    `ImageLimits.work_max_side` per side. `width` and `height` are the original image's
    (after EXIF orientation); `scale` maps working-copy pixels back to original pixels.
    """

    pixels: npt.NDArray[np.uint8]
    format: str
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)
    source_mode: str = ""  # Pillow mode or DICOM photometric interpretation and bit depth
    dicom: DicomInfo | None = None

    @property
    def scale(self) -> float:
        """Original pixels per working-copy pixel (1.0 when the image was not reduced)."""
        return self.width / int(self.pixels.shape[1])
