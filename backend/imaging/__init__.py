"""Upload sniffing and decoding of chest X-rays (PNG, JPEG, DICOM)."""

from backend.imaging.decode import DecodedImage, ImageLimits, decode_image
from backend.imaging.errors import ImageRejected
from backend.imaging.sniff import sniff_format

__all__ = ["DecodedImage", "ImageLimits", "ImageRejected", "decode_image", "sniff_format"]
