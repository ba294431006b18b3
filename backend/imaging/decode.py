"""Decode PNG/JPEG/DICOM into one normalised 8-bit grayscale array, refusing hostile input."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.imaging.errors import ImageRejected
from backend.imaging.sniff import sniff_format

# Mean absolute channel difference (0-255) above which an RGB image is a colour picture.
COLOUR_THRESHOLD = 6.0


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 64


@dataclass
class DecodedImage:
    pixels: npt.NDArray[np.uint8]  # 2-D, grayscale, 0-255
    format: str
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


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
    if fmt == "dicom":
        decoded = _decode_dicom(data, limits)
    else:
        decoded = _decode_raster(data, fmt, limits)
    h, w = decoded.pixels.shape
    if min(h, w) < limits.min_side:
        raise ImageRejected(
            f"The image is {w}x{h} pixels; at least {limits.min_side} pixels per side are needed.",
            code="image_too_small",
        )
    if float(decoded.pixels.std()) < 2.0:
        raise ImageRejected("The image is blank (no contrast).", code="image_blank")
    return decoded


def _check_pixels(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"The image is {width}x{height} pixels; the limit is {limits.max_pixels:,} pixels.",
            status_code=413,
            code="image_too_many_pixels",
        )


def _decode_raster(data: bytes, fmt: str, limits: ImageLimits) -> DecodedImage:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            _check_pixels(img.width, img.height, limits)
            img = ImageOps.exif_transpose(img)
            img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            "The image declares more pixels than allowed (decompression bomb guard).",
            status_code=413,
            code="image_too_many_pixels",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(
            f"The {fmt.upper()} file could not be decoded (truncated or corrupt).",
            code="image_corrupt",
        ) from exc
    mode = img.mode
    pixels: npt.NDArray[np.uint8]
    if mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        raw = np.asarray(img, dtype=np.float64)
        pixels = window_to_uint8(raw)
        notes.append(f"{mode} image windowed to 8 bits")
    else:
        if mode == "CMYK":
            img = img.convert("RGB")
            notes.append("CMYK image converted")
        if mode in {"P", "PA"}:
            img = img.convert("RGBA")
        if img.mode in {"RGBA", "LA"}:
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))
            img = Image.alpha_composite(background, img.convert("RGBA"))
        if img.mode in {"RGB", "RGBA"}:
            rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
            _reject_colour(rgb)
            pixels = np.asarray(img.convert("L"), dtype=np.uint8)
        else:
            pixels = np.asarray(img.convert("L"), dtype=np.uint8)
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        format=fmt,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        warnings=notes,
        meta={"mode": mode},
    )


def _reject_colour(rgb: npt.NDArray[np.int16]) -> None:
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))
    sample = rgb[::step, ::step]
    diff = (
        np.abs(sample[..., 0] - sample[..., 1]).mean()
        + np.abs(sample[..., 1] - sample[..., 2]).mean()
    ) / 2
    if diff > COLOUR_THRESHOLD:
        raise ImageRejected(
            "This is a colour image, not a radiograph. Upload a chest X-ray (grayscale).",
            code="not_a_radiograph",
        )


def window_to_uint8(
    raw: npt.NDArray[np.float64], low_pct: float = 0.5, high_pct: float = 99.5
) -> npt.NDArray[np.uint8]:
    """Map a high-bit-depth image to 0-255 by robust percentile windowing."""
    finite = raw[np.isfinite(raw)]
    if finite.size == 0:
        raise ImageRejected("The image has no finite pixel values.", code="image_corrupt")
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros(raw.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(raw, nan=lo) - lo) / (hi - lo)
    return np.asarray(np.clip(scaled * 255.0 + 0.5, 0, 255), dtype=np.uint8)


def _decode_dicom(data: bytes, limits: ImageLimits) -> DecodedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise ImageRejected("The DICOM file could not be read.", code="image_corrupt") from exc
    if "PixelData" not in ds:
        raise ImageRejected("The DICOM file has no pixel data.", code="dicom_no_pixels")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    _check_pixels(cols, rows, limits)
    notes: list[str] = []
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken pixel data
        raise ImageRejected(
            "The DICOM pixel data could not be decoded (unsupported transfer syntax or corrupt).",
            code="image_corrupt",
        ) from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if frames > 1:
        arr = arr[0]
        notes.append(f"multi-frame DICOM: first of {frames} frames used")
    if photometric in {"RGB", "YBR_FULL", "YBR_FULL_422"} or arr.ndim == 3:
        rgb = np.asarray(arr, dtype=np.int16)
        if rgb.ndim == 3 and rgb.shape[-1] == 3:
            _reject_colour(rgb)
            arr = rgb.mean(axis=-1)
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        values = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
        notes.append("VOI LUT/window applied")
    pixels = (
        window_to_uint8(values, 0.0, 100.0) if "WindowCenter" in ds else window_to_uint8(values)
    )
    if photometric == "MONOCHROME1":
        pixels = np.asarray(255 - pixels, dtype=np.uint8)
        notes.append("MONOCHROME1 inverted")
    meta = {
        "modality": str(ds.get("Modality", "")),
        "body_part": str(ds.get("BodyPartExamined", "")),
        "view": str(ds.get("ViewPosition", "")),
        "photometric": photometric,
        "bits_stored": int(ds.get("BitsStored", 8) or 8),
    }
    if meta["modality"] and meta["modality"] not in {"CR", "DX", "DR", "RG", "OT"}:
        notes.append(f"DICOM modality {meta['modality']} is not a plain radiograph")
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        format="dicom",
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        warnings=notes,
        meta=meta,
    )
