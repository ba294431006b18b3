"""PNG and JPEG: header checks, then a decode whose only full-size buffer is Pillow's own."""

from __future__ import annotations

import io
import warnings

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from backend.imaging.errors import ImageRejected
from backend.imaging.gate import decode_slot
from backend.imaging.pixels import (
    reduce_strips,
    reduction_factor,
    reject_colour,
    too_large_decoded,
    too_many_pixels,
    window_to_uint8,
)
from backend.imaging.types import DecodedImage, ImageLimits

# Bytes per pixel of Pillow's buffer for each mode (Pillow pads 2- and 3-band modes to 4), and
# for palette modes the RGBA image they are expanded to at full size.
_BUFFER_BYTES = {"1": 1, "L": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_HIGH_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_PALETTE = {"P", "PA"}
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode_raster(data: bytes, fmt: str, limits: ImageLimits) -> DecodedImage:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            width, height, mode = img.width, img.height, img.mode
            if width * height > limits.max_pixels:
                raise too_many_pixels(width, height, limits.max_pixels)
            if fmt == "jpeg":
                # libjpeg scales by 1/2..1/8 while decoding: a huge JPEG never exists at full size.
                k = reduction_factor(width, height, limits.work_max_side)
                img.draft(mode, (max(1, width // k), max(1, height // k)))
            bytes_per_pixel = 4 if mode in _PALETTE else _BUFFER_BYTES.get(img.mode, 4)
            decoded = img.width * img.height * bytes_per_pixel
            if decoded > limits.max_decoded_bytes:
                raise too_large_decoded(f"This {fmt.upper()}", decoded, limits.max_decoded_bytes)
            with decode_slot(limits.max_concurrent_decodes):
                img.load()
                # Read after load: a PNG's getexif() would load the full image itself.
                orientation = int(img.getexif().get(0x0112, 1) or 1)
                work = _working_copy(img, limits.work_max_side, notes)
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
    if orientation in _ORIENTATION:
        work = np.asarray(Image.fromarray(work).transpose(_ORIENTATION[orientation]))
        if orientation >= 5:
            width, height = height, width
    return DecodedImage(
        pixels=work,
        format=fmt,
        width=width,
        height=height,
        warnings=notes,
        source_mode=mode,
    )


def _working_copy(img: Image.Image, max_side: int, notes: list[str]) -> npt.NDArray[np.uint8]:
    """The reduced 8-bit grayscale copy; the full-size image is only read in strips."""
    if img.mode in _PALETTE:
        img = img.convert("RGBA")
    elif img.mode == "1":
        img = img.convert("L")
    k = reduction_factor(img.width, img.height, max_side)
    if img.mode in _HIGH_BIT:
        notes.append(f"{img.mode} image windowed to 8 bits")
        return window_to_uint8(_reduced(img, k) if k > 1 else np.asarray(img, np.float32))
    if k > 1:
        small = np.asarray(np.clip(np.rint(_reduced(img, k)), 0, 255), dtype=np.uint8)
        img = Image.frombytes(img.mode, (small.shape[1], small.shape[0]), small.tobytes())
    return _to_gray(img, notes)


def _reduced(img: Image.Image, k: int) -> npt.NDArray[np.float32]:
    def strip(top: int, bottom: int) -> npt.NDArray[np.generic]:
        return np.asarray(img.crop((0, top, img.width, bottom)))

    return reduce_strips(strip, img.height, k)


def _to_gray(img: Image.Image, notes: list[str]) -> npt.NDArray[np.uint8]:
    """Gray from any 8-bit mode: alpha composited on black, colour refused."""
    if img.mode == "CMYK":
        img = img.convert("RGB")
        notes.append("CMYK image converted")
    if img.mode in {"RGBA", "LA"}:
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode in {"RGB", "RGBA"}:
        reject_colour(np.asarray(img.convert("RGB")))
    return np.ascontiguousarray(np.asarray(img.convert("L"), dtype=np.uint8))
