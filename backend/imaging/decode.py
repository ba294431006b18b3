"""Decode PNG/JPEG/DICOM into one normalised 8-bit grayscale working copy, refusing hostile input.

Every format is sized from its header before a pixel is decoded (see `ImageLimits`), and all
work after the decode runs on a copy at most `work_max_side` pixels per side.
"""

from __future__ import annotations

from backend.imaging.dicom import decode_dicom
from backend.imaging.errors import ImageRejected
from backend.imaging.pixels import window_to_uint8
from backend.imaging.raster import decode_raster
from backend.imaging.sniff import sniff_format
from backend.imaging.types import DecodedImage, DicomInfo, ImageLimits

__all__ = ["DecodedImage", "DicomInfo", "ImageLimits", "decode_image", "window_to_uint8"]


def decode_image(data: bytes, limits: ImageLimits | None = None) -> DecodedImage:
    """Sniff, size-check and decode an upload; raise ImageRejected with a clear message."""
    limits = limits or ImageLimits()
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            f"The image is {len(data) / 2**20:.1f} MB; the limit is "
            f"{limits.max_bytes / 2**20:.0f} MB.",
            status_code=413,
            code="image_too_large",
        )
    fmt = sniff_format(data)
    decoded = decode_dicom(data, limits) if fmt == "dicom" else decode_raster(data, fmt, limits)
    if min(decoded.width, decoded.height) < limits.min_side:
        raise ImageRejected(
            f"The image is {decoded.width}x{decoded.height} pixels; at least "
            f"{limits.min_side} pixels per side are needed.",
            code="image_too_small",
        )
    if float(decoded.pixels.std()) < 2.0:
        raise ImageRejected("The image is blank (no contrast).", code="image_blank")
    return decoded
