"""Generate hostile and malformed uploads into `files/` (gitignored); run: python generate.py.

Each entry says what the service must do with it: "reject" (a 4xx problem+json) or "warn"
(accepted, but the result carries a clear warning). `expected.json` lists them.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = Path(os.environ.get("MEDSIGHT_SHARED_DATA", REPO.parent / "shared" / "data"))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: ~100 KB on disk, 900 Mpx decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def png_declared_huge() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def xray() -> Image.Image:
    path = SHARED / "cxr-dev" / "fixtures" / "dev-0009.png"
    return Image.open(path).convert("L")


def dicom_bytes(with_pixels: bool, corrupt: bool = False) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientName = "Test^Hostile"
    if with_pixels:
        arr = np.asarray(xray(), dtype=np.uint16) * 16
        ds.Rows, ds.Columns = arr.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        raw = arr.tobytes()
        ds.PixelData = raw[: len(raw) // 3] if corrupt else raw
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def build() -> dict[str, tuple[bytes, str]]:
    base = xray()
    png = encode(base, "PNG")
    jpeg = encode(base, "JPEG", quality=90)
    rng = np.random.default_rng(0)
    gradient = np.zeros((256, 256, 3), dtype=np.uint8)
    gradient[..., 0] = np.arange(256)[None, :]
    gradient[..., 1] = np.arange(256)[:, None]
    gradient[..., 2] = 255 - np.arange(256)[None, :]
    colour_photo = Image.fromarray(gradient)
    try:
        from sklearn.datasets import load_sample_image

        colour_photo = Image.fromarray(load_sample_image("china.jpg"))
    except Exception:  # noqa: BLE001,S110 - the synthetic gradient is the fallback
        pass
    grey_photo = colour_photo.convert("L")
    arr16 = (np.asarray(base, dtype=np.uint16) * 257).astype(np.uint16)
    files: dict[str, tuple[bytes, str]] = {
        "zero_bytes.png": (b"", "reject"),
        "truncated.png": (png[: len(png) // 2], "reject"),
        "header_only.png": (png[:33], "reject"),
        "text_renamed.png": (b"This is not an image, just text.\n" * 20, "reject"),
        "random_bytes.jpg": (rng.bytes(4096), "reject"),
        "bomb_30000.png": (png_bomb(30_000), "reject"),
        "declared_100k.png": (png_declared_huge(), "reject"),
        "corrupt_idat.png": (png[:60] + b"\xff" * 200 + png[260:], "reject"),
        "truncated.jpg": (jpeg[: len(jpeg) // 3], "reject"),
        "image.gif": (encode(base, "GIF"), "reject"),
        "image.bmp": (encode(base, "BMP"), "reject"),
        "image.tiff": (encode(base, "TIFF"), "reject"),
        "image.webp": (encode(base, "WEBP"), "reject"),
        "script.svg": (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "reject",
        ),
        "page.html.png": (b"<html><body onload=alert(1)></body></html>", "reject"),
        "document.pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "reject"),
        "archive.zip": (b"PK\x03\x04" + rng.bytes(200), "reject"),
        "colour_photo.jpg": (encode(colour_photo, "JPEG"), "reject"),
        "tiny_1x1.png": (encode(Image.new("L", (1, 1), 128), "PNG"), "reject"),
        "thin_4000x32.png": (encode(Image.new("L", (4000, 32), 90), "PNG"), "reject"),
        "blank_white.png": (encode(Image.new("L", (512, 512), 255), "PNG"), "reject"),
        "dicom_no_pixels.dcm": (dicom_bytes(False), "reject"),
        "dicom_corrupt_pixels.dcm": (dicom_bytes(True, corrupt=True), "reject"),
        "dicom_magic_garbage.dcm": (b"\0" * 128 + b"DICM" + rng.bytes(300), "reject"),
        "oversize_body.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * (26 * 1024 * 1024), "reject"),
        "sixteen_bit.png": (encode(Image.fromarray(arr16), "PNG"), "warn"),
        "cmyk.jpg": (encode(base.convert("CMYK"), "JPEG"), "warn"),
        "grey_photo_not_xray.jpg": (encode(grey_photo, "JPEG"), "warn"),
    }
    return files


def main() -> int:
    out = HERE / "files"
    out.mkdir(exist_ok=True)
    expected = {}
    for name, (data, outcome) in build().items():
        (out / name).write_bytes(data)
        expected[name] = outcome
    (out / "expected.json").write_text(json.dumps(expected, indent=2))
    (out / "symptoms_100kb.txt").write_text("cough " * 17_000)
    sys.stdout.write(f"wrote {len(expected)} files to {out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
