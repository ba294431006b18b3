"""The heatmap travels as a data URI (`data:image/jpeg;base64,...`): encode and decode it."""

from __future__ import annotations

import base64
import binascii

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


def media_type_of(data: bytes) -> str | None:
    """image/jpeg or image/png by the bytes' signature; None for anything else."""
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)


def to_data_uri(data: bytes, media_type: str | None = None) -> str:
    kind = media_type or media_type_of(data) or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_uri(value: str) -> tuple[bytes, str] | None:
    """(bytes, media type) of a data URI or of bare base64; None unless it is a JPEG or PNG."""
    payload = value.partition(",")[2] if value.startswith("data:") else value
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = media_type_of(data)
    return (data, kind) if kind else None
