"""Hostile uploads that are small on the wire and huge once decoded (decompression bombs).

Each builder returns the bytes of a well-formed file; nothing large is ever held in memory
while building one (the deflate streams are assembled from repeated, byte-aligned blocks).
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

_CHUNK = 1 << 20  # 1 MiB of zeros per repeated deflate block


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _repeated_zeros(comp: zlib._Compress, total: int) -> bytes:  # type: ignore[name-defined]
    """Deflate `total` zero bytes; full flushes make every 1 MiB block identical (reused)."""
    zeros = bytes(_CHUNK)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(total, _CHUNK)
    parts = [first, block * max(0, full - 2)] if full >= 2 else [first] * full
    if full >= 2:
        parts.append(block)
    if rest:
        parts.append(comp.compress(bytes(rest)) + comp.flush(zlib.Z_FULL_FLUSH))
    return b"".join(parts)


def _adler32_of_zeros(total: int) -> int:
    value, zeros = 1, bytes(_CHUNK)
    full, rest = divmod(total, _CHUNK)
    for _ in range(full):
        value = zlib.adler32(zeros, value)
    return zlib.adler32(bytes(rest), value)


def png_bomb(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A valid all-black PNG; colour_type 0 gray, 2 RGB, 6 RGBA (bit_depth 8 or 16)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = 1 + width * channels * bit_depth // 8
    # Rows are a filter byte (0) and zeros, so the raw stream is all zeros. The zlib wrapper is
    # written by hand: the compressor never sees the repeated blocks, so its checksum would be
    # wrong.
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = _repeated_zeros(comp, row * height) + comp.flush()
    idat = b"\x78\xda" + raw + struct.pack(">I", _adler32_of_zeros(row * height))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_bomb(width: int, height: int, mode: str = "RGB") -> bytes:
    """A flat JPEG of width x height (tiny file, width*height*bands bytes once decoded)."""
    buf = io.BytesIO()
    # Built in horizontal strips would need a JPEG writer of our own; a flat image compresses
    # to a few hundred KB and Pillow holds it once while saving (test process only).
    Image.new(mode, (width, height), 0).save(buf, format="JPEG", quality=5)
    return buf.getvalue()


def _element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"OF"):
        return (
            struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
        )
    return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\0" if len(raw) % 2 else raw


def _str(value: str) -> bytes:
    raw = value.encode()
    return raw + b" " if len(raw) % 2 else raw


DEFLATED = "1.2.840.10008.1.2.1.99"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def deflated_dicom_bomb(inflated_bytes: int, rows: int = 512, cols: int = 512) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM whose PixelData inflates to `inflated_bytes`."""
    sop_uid = "1.2.826.0.1.3680043.8.498.1"
    meta_body = (
        _element(0x0002, 0x0001, b"OB", b"\0\1")
        + _element(0x0002, 0x0002, b"UI", _uid(SC_STORAGE))
        + _element(0x0002, 0x0003, b"UI", _uid(sop_uid))
        + _element(0x0002, 0x0010, b"UI", _uid(DEFLATED))
        + _element(0x0002, 0x0012, b"UI", _uid("1.2.826.0.1.3680043.8.498"))
    )
    meta = _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta_body))) + meta_body
    inflated_bytes -= inflated_bytes % 2
    dataset = (
        _element(0x0008, 0x0016, b"UI", _uid(SC_STORAGE))
        + _element(0x0008, 0x0018, b"UI", _uid(sop_uid))
        + _element(0x0008, 0x0060, b"CS", _str("DX"))
        + _element(0x0028, 0x0002, b"US", struct.pack("<H", 1))
        + _element(0x0028, 0x0004, b"CS", _str("MONOCHROME2"))
        + _element(0x0028, 0x0010, b"US", struct.pack("<H", rows))
        + _element(0x0028, 0x0011, b"US", struct.pack("<H", cols))
        + _element(0x0028, 0x0100, b"US", struct.pack("<H", 16))
        + _element(0x0028, 0x0101, b"US", struct.pack("<H", 12))
        + _element(0x0028, 0x0102, b"US", struct.pack("<H", 11))
        + _element(0x0028, 0x0103, b"US", struct.pack("<H", 0))
        + struct.pack("<HH", 0x7FE0, 0x0010)
        + b"OW\0\0"
        # A 32-bit length: past 4 GB the stream simply goes on (the decoder inflates first).
        + struct.pack("<I", min(inflated_bytes, 0xFFFFFFFE))
    )
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = comp.compress(dataset) + comp.flush(zlib.Z_FULL_FLUSH)
    body += _repeated_zeros(comp, inflated_bytes) + comp.flush()
    return b"\0" * 128 + b"DICM" + meta + body
