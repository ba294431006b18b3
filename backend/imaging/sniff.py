"""Identify an upload by its bytes, never by its name or declared content type."""

from __future__ import annotations

from backend.imaging.errors import ImageRejected

_UNSUPPORTED = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"\x1f\x8b", "GZIP"),
)


def sniff_format(data: bytes) -> str:
    """Return "png", "jpeg" or "dicom"; raise ImageRejected (415) for anything else."""
    if not data:
        raise ImageRejected("The uploaded file is empty.", status_code=400, code="empty_file")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    kind = next((name for magic, name in _UNSUPPORTED if data.startswith(magic)), None)
    if kind is None and data[:12].startswith(b"RIFF") and data[8:12] == b"WEBP":
        kind = "WebP"
    head = data[:512].lstrip().lower()
    if kind is None and (head.startswith(b"<?xml") or b"<svg" in head or b"<html" in head):
        kind = "SVG/XML/HTML"
    what = f"a {kind} file" if kind else "not a recognised image"
    raise ImageRejected(
        f"Unsupported upload: {what}. Send a chest X-ray as PNG, JPEG or DICOM.",
        status_code=415,
        code="unsupported_image_type",
    )
