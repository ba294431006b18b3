"""Pixel operations shared by the decoders: bounded reduction, windowing, the colour check."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.imaging.errors import ImageRejected

# Mean absolute channel difference (0-255) above which an RGB image is a colour picture.
COLOUR_THRESHOLD = 6.0


# Rows handled at once while reducing: a strip is converted to float32, never the whole frame.
_STRIP_ROWS = 256


def reduction_factor(width: int, height: int, max_side: int) -> int:
    """The smallest integer factor that brings the longest side to at most `max_side`."""
    return max(1, math.ceil(max(width, height) / max_side))


def _block_mean(strip: npt.NDArray[np.generic], k: int) -> npt.NDArray[np.float32]:
    """Mean of each k x k block (the last row/column of blocks may be partial)."""
    a = np.asarray(strip, dtype=np.float32)
    h, w = a.shape[:2]
    rows = np.add.reduceat(a, np.arange(0, h, k), axis=0)
    rows /= np.minimum(k, h - np.arange(0, h, k)).reshape((-1,) + (1,) * (a.ndim - 1))
    out = np.add.reduceat(rows, np.arange(0, w, k), axis=1)
    out /= np.minimum(k, w - np.arange(0, w, k)).reshape((1, -1) + (1,) * (a.ndim - 2))
    return np.asarray(out, dtype=np.float32)


def reduce_strips(
    strip: Callable[[int, int], npt.NDArray[np.generic]], height: int, k: int
) -> npt.NDArray[np.float32]:
    """Box-reduce by `k` a frame read as row strips (`strip(top, bottom)`), in float32.

    Only one strip is ever converted at a time, so reducing a 16-bit frame costs its own
    memory plus a few MB, not a float copy of it.
    """
    step = max(k, _STRIP_ROWS // k * k)
    parts = [_block_mean(strip(top, min(top + step, height)), k) for top in range(0, height, step)]
    return np.ascontiguousarray(np.concatenate(parts, axis=0))


def reduce_array(arr: npt.NDArray[np.generic], k: int) -> npt.NDArray[np.float32]:
    """Box-reduce a decoded array (H x W or H x W x C) by `k`; float32 out."""
    if k == 1:
        return np.asarray(arr, dtype=np.float32)
    return reduce_strips(lambda top, bottom: arr[top:bottom], int(arr.shape[0]), k)


def window_to_uint8(
    raw: npt.NDArray[np.floating[Any]], low_pct: float = 0.5, high_pct: float = 99.5
) -> npt.NDArray[np.uint8]:
    """Map a high-bit-depth image to 0-255 by robust percentile windowing (float32 work)."""
    values = np.asarray(raw, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ImageRejected("The image has no finite pixel values.", code="image_corrupt")
    lo, hi = (float(v) for v in np.percentile(finite, [low_pct, high_pct]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(values, nan=lo) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.asarray(np.clip(scaled + 0.5, 0, 255), dtype=np.uint8)


def reject_colour(rgb: npt.NDArray[np.generic]) -> None:
    """Refuse a colour picture; grayscale stored as RGB (R = G = B) passes."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))
    sample = np.asarray(rgb[::step, ::step, :3], dtype=np.int16)
    diff = (
        np.abs(sample[..., 0] - sample[..., 1]).mean()
        + np.abs(sample[..., 1] - sample[..., 2]).mean()
    ) / 2
    if diff > COLOUR_THRESHOLD:
        raise ImageRejected(
            "This is a colour image, not a radiograph. Upload a chest X-ray (grayscale).",
            code="not_a_radiograph",
        )


def too_many_pixels(width: int, height: int, max_pixels: int) -> ImageRejected:
    return ImageRejected(
        f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels.",
        status_code=413,
        code="image_too_many_pixels",
    )


def too_large_decoded(what: str, decoded: int, limit: int) -> ImageRejected:
    return ImageRejected(
        f"{what} would take {decoded / 2**20:.0f} MB once decoded; the limit is "
        f"{limit / 2**20:.0f} MB.",
        status_code=413,
        code="image_decoded_too_large",
    )
