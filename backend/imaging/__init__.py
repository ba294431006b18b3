"""Upload sniffing and decoding of chest X-rays (PNG, JPEG, DICOM)."""

from backend.imaging.decode import decode_image
from backend.imaging.errors import ImageRejected
from backend.imaging.sniff import sniff_format
from backend.imaging.types import DecodedImage, DicomInfo, ImageLimits

__all__ = [
    "DecodedImage",
    "DicomInfo",
    "ImageLimits",
    "ImageRejected",
    "decode_image",
    "sniff_format",
]
