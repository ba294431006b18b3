"""Image preprocessing on numpy/OpenCV (torchvision is not installed).

Every backend (torch eager, ONNX Runtime) receives the same tensor from here, so the
preprocessing is shared and parity tests only compare the networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

# ImageNet statistics for both backbones. (EfficientNet-Lite's TF recipe scales to [-1, 1]; on the
# cxr-dev validation split ImageNet statistics without a percentile stretch gave pooled-kNN AUROC
# 0.910 vs 0.880 for [-1, 1] with a 0.5-99.5 percentile stretch, so the stretch is not used.)
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "efficientnet_lite0": _IMAGENET,
    "vgg16": _IMAGENET,
}

# Bump when anything below changes what the network sees: feature caches are keyed on it.
PREPROCESSING_VERSION = "2"

# A uniform frame (letterboxing, padding to a square, an electronic shutter, a black field of
# view) is trimmed before resizing: an edge row or column is frame when at least 98% of its
# pixels lie within 6 grey levels of its median and that median is dark (< 40) or bright
# (> 215). At most a quarter of each side goes. Without it a black border made abnormal images
# look normal to the pooled kNN (the zoom-out shift: TEST AUROC 0.822, sensitivity 0.66).
_FRAME_TOLERANCE = 6
_FRAME_SHARE = 0.98
_FRAME_DARK, _FRAME_BRIGHT = 40, 215
_FRAME_MAX_SIDE = 0.25

_CLAHE_CLIP = 2.0
_CLAHE_TILES = (8, 8)


def to_gray_uint8(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Return a 2-D uint8 image; colour input is converted (ITU-R 601 luma)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        arr = cv2.cvtColor(np.ascontiguousarray(to_uint8(arr)), cv2.COLOR_RGB2GRAY)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image (or HxWx3), got shape {arr.shape}")
    if min(arr.shape) < 16:
        raise ValueError(f"image too small to score: {arr.shape}")
    return to_uint8(arr)


def to_uint8(arr: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Rescale any numeric array to uint8 (min-max for non-uint8 input)."""
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr, dtype=np.uint8)
    a = arr.astype(np.float32)
    lo, hi = float(np.min(a)), float(np.max(a))
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return ((a - lo) / (hi - lo) * 255.0 + 0.5).astype(np.uint8)


def colourfulness(image: npt.NDArray[np.generic]) -> float:
    """Hasler-Suesstrunk colourfulness of an RGB image (0 for grayscale); X-rays are ~0."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        return 0.0
    rgb = arr[:, :, :3].astype(np.float32)
    if arr.dtype != np.uint8:
        rgb = to_uint8(rgb).astype(np.float32)
    rg = rgb[:, :, 0] - rgb[:, :, 1]
    yb = 0.5 * (rgb[:, :, 0] + rgb[:, :, 1]) - rgb[:, :, 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def clahe(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Contrast-limited adaptive histogram equalisation (OpenCV; the display panel uses it)."""
    op = cv2.createCLAHE(clipLimit=_CLAHE_CLIP, tileGridSize=_CLAHE_TILES)
    return np.asarray(op.apply(gray), dtype=np.uint8)


def resize_gray(gray: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """Resize to size x size (aspect not kept: boxes map back by per-axis scale)."""
    h, w = gray.shape
    # INTER_AREA when shrinking: large (e.g. 2000 px) site images would alias with bilinear.
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(gray, (size, size), interpolation=interp), dtype=np.uint8)


def normalise_gray(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Stretch the 0.5-99.5 percentile range to 0-255 (not used by the shipped model; see above)."""
    lo, hi = np.percentile(gray, (0.5, 99.5))
    if hi - lo < 1:
        return gray
    out = (gray.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def _is_frame(line: npt.NDArray[np.uint8]) -> bool:
    median = float(np.median(line))
    if _FRAME_DARK <= median <= _FRAME_BRIGHT:
        return False
    close = np.abs(line.astype(np.int16) - int(round(median))) <= _FRAME_TOLERANCE
    return bool(close.mean() >= _FRAME_SHARE)


def frame_box(gray: npt.NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the content inside a uniform frame (all of it if none)."""
    h, w = gray.shape
    top, bottom, left, right = 0, h, 0, w
    max_rows, max_cols = int(h * _FRAME_MAX_SIDE), int(w * _FRAME_MAX_SIDE)
    box = None
    while box != (top, bottom, left, right):  # again: a side's frame may start past another's
        box = (top, bottom, left, right)
        while top < max_rows and _is_frame(gray[top, left:right]):
            top += 1
        while h - bottom < max_rows and _is_frame(gray[bottom - 1, left:right]):
            bottom -= 1
        while left < max_cols and _is_frame(gray[top:bottom, left]):
            left += 1
        while w - right < max_cols and _is_frame(gray[top:bottom, right - 1]):
            right -= 1
    return top, bottom, left, right


def trim_frame(
    gray: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], tuple[int, int, int, int]]:
    """The content inside a uniform frame, and its box (top, bottom, left, right)."""
    top, bottom, left, right = box = frame_box(gray)
    return np.ascontiguousarray(gray[top:bottom, left:right]), box


def prepare_gray(image: npt.NDArray[np.generic], size: int) -> npt.NDArray[np.uint8]:
    """Any input image -> the size x size uint8 grayscale the network sees (frame trimmed)."""
    return resize_gray(trim_frame(to_gray_uint8(image))[0], size)


def to_network_input(
    grays: Sequence[npt.NDArray[np.uint8]], backbone: str
) -> npt.NDArray[np.float32]:
    """Stack prepared grayscale images into an (N, 1, S, S) float32 array in [0, 1].

    Channel replication and mean/std normalisation happen inside the network, so the
    exported ONNX graph takes this single-channel tensor.
    """
    batch = np.stack([g.astype(np.float32) / 255.0 for g in grays])[:, None]
    return np.ascontiguousarray(batch)
