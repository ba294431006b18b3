"""Schemathesis hooks (schemathesis.toml names this file): how to send a STOW-RS body.

Schemathesis has no serializer for `multipart/related`; this one wraps each generated body as
one DICOM part of a well-formed STOW-RS request, so the fuzzer reaches the part parser and the
decoder instead of stopping at a missing boundary.
"""

from __future__ import annotations

from typing import Any

from schemathesis.transport import SerializationContext, register_serializer

BOUNDARY = "schemathesis-stow"


def related(_ctx: SerializationContext, value: Any) -> dict[str, Any]:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return {
        "data": head + data + f"\r\n--{BOUNDARY}--\r\n".encode(),
        "headers": {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
        },
    }


register_serializer(related, "multipart/related")
