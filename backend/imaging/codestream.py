"""Frame sizes read from compressed codestream headers, before any decoder runs.

A DICOM header's Rows/Columns say how big a frame is; the codestream inside says it again and
the decoder believes the codestream. Both are read here so a frame that lies is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# SOF markers of every JPEG process (baseline, extended, lossless, hierarchical, arithmetic)
# and JPEG-LS's SOF55.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}


@dataclass(frozen=True)
class FrameHeader:
    width: int
    height: int
    components: int
    precision: int


def jpeg_header(frame: bytes) -> FrameHeader | None:
    """Size of a JPEG, JPEG Lossless or JPEG-LS frame from its SOF segment."""
    if not frame.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(frame):
        if frame[pos] != 0xFF:
            return None
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _NO_LENGTH:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", frame, pos + 2)
        if marker in _SOF and pos + 10 <= len(frame):
            precision, height, width, components = struct.unpack_from(">BHHB", frame, pos + 4)
            return FrameHeader(width, height, components, precision)
        if marker == 0xDA or length < 2:  # start of scan before any SOF: malformed
            return None
        pos += 2 + length
    return None


def j2k_header(frame: bytes) -> FrameHeader | None:
    """Size of a JPEG 2000 frame (raw codestream or JP2) from its SIZ segment."""
    start = frame.find(b"\xff\x4f\xff\x51", 0, 4096)
    if start < 0 or start + 42 > len(frame):
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    if components == 0 or start + 42 + 3 > len(frame) or xsiz <= xosiz or ysiz <= yosiz:
        return None
    precision = (frame[start + 42] & 0x7F) + 1
    return FrameHeader(xsiz - xosiz, ysiz - yosiz, components, precision)


def rle_segments(frame: bytes) -> list[int] | None:
    """Segment offsets of a DICOM RLE frame (its 64-byte header), or None when malformed."""
    if len(frame) < 64:
        return None
    header = struct.unpack_from("<16I", frame, 0)
    count = header[0]
    offsets = list(header[1 : 1 + count])
    if not 1 <= count <= 15 or offsets[0] != 64:
        return None
    if any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)) or offsets[-1] >= len(frame):
        return None
    return offsets
