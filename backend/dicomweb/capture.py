"""The heatmap as a Secondary Capture image for the PACS, with a burned-in banner.

The image is the result's explanation panels (original | heatmap | overlay, the same picture
the API, viewer and PDF show) under a banner that says what it is: decision support, not a
diagnosis, with the score and risk. The banner is part of the pixels (BurnedInAnnotation YES),
so no viewer can show the heatmap without it. JPEG Baseline: the panels are already a JPEG.
"""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit

from backend.contract import AnalysisResult
from backend.dicomweb.writers import (
    IMAGE_SERIES_NUMBER,
    MANUFACTURER,
    Targets,
    WriterError,
    content_time,
    source_reference,
    stamp,
)

BANNER = "DECISION SUPPORT - NOT A DIAGNOSIS"
_BANNER_BG = (0, 0, 0)
_BANNER_FG = (255, 214, 0)
_TEXT_FG = (255, 255, 255)
# Orientation letters highdicom accepts while building; replaced by the source's own below.
_PLACEHOLDER_ORIENTATION = ("L", "F")


def banner_lines(result: AnalysisResult) -> list[str]:
    vision = result.vision
    assert vision is not None  # noqa: S101 - checked by the caller
    risk = result.final_risk or vision.risk_level
    model = result.provenance.models.get("vision")
    name = f"{model.name} {model.version}" if model is not None else MANUFACTURER
    return [
        BANNER,
        f"MedSight AI heatmap | anomaly score {vision.anomaly_score:.1f}/100 "
        f"(threshold {vision.threshold:.1f}) | risk {risk.value} | {name}",
        "Review by a qualified clinician is required.",
    ]


def with_banner(panels: npt.NDArray[np.uint8], lines: list[str]) -> npt.NDArray[np.uint8]:
    """The RGB image with a black strip above it holding `lines` (the first in yellow)."""
    height, width = panels.shape[:2]
    size = max(16, min(48, width // 60))
    font = ImageFont.load_default(size=size)
    line_h = int(size * 1.35)
    strip = Image.new("RGB", (width, line_h * len(lines) + size // 2), _BANNER_BG)
    draw = ImageDraw.Draw(strip)
    for i, text in enumerate(lines):
        colour = _BANNER_FG if i == 0 else _TEXT_FG
        draw.text((size // 2, size // 4 + i * line_h), text, font=font, fill=colour)
    out = np.concatenate([np.asarray(strip, dtype=np.uint8), panels], axis=0)
    # JPEG's 4:2:2 chroma needs an even width.
    if out.shape[1] % 2:
        out = np.concatenate([out, np.zeros((out.shape[0], 1, 3), np.uint8)], axis=1)
    return np.asarray(out, dtype=np.uint8)


def heatmap_capture(source: Dataset, result: AnalysisResult, targets: Targets) -> Dataset:
    """A Secondary Capture in the source's study: the heatmap panels under the banner."""
    heatmap = result.heatmap_bytes()
    if result.vision is None or heatmap is None:
        raise WriterError("the result has no heatmap")
    try:
        with Image.open(io.BytesIO(heatmap[0])) as im:
            panels = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise WriterError("the result's heatmap image cannot be read") from exc
    pixels = with_banner(panels, banner_lines(result))
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation="YBR_FULL_422",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=targets.image_series_uid,
        series_number=IMAGE_SERIES_NUMBER,
        sop_instance_uid=targets.image_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_orientation=_PLACEHOLDER_ORIENTATION,
        transfer_syntax_uid=JPEGBaseline8Bit,
    )
    # Each panel has the source's orientation; empty (type 2) when the source states none.
    orientation = source.get("PatientOrientation")
    if isinstance(orientation, str):
        orientation = [orientation]
    sc.PatientOrientation = [str(v) for v in orientation] if orientation else []
    sc.BurnedInAnnotation = "YES"
    sc.RecognizableVisualFeatures = "NO"
    sc.LossyImageCompression = "01"
    sc.LossyImageCompressionMethod = "ISO_10918_1"
    sc.DerivationDescription = (
        "MedSight anomaly heatmap panels (original | heatmap | overlay) with a burned-in "
        "decision-support banner"
    )
    sc.SourceImageSequence = [source_reference(source)]
    for keyword in ("BodyPartExamined", "Laterality"):
        if source.get(keyword):
            setattr(sc, keyword, source.get(keyword))
    stamp(sc, content_time(result), "MedSight AI heatmap - decision support")
    return sc
