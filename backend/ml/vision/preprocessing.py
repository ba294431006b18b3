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
PREPROCESSING_VERSION = "1"

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


def prepare_gray(image: npt.NDArray[np.generic], size: int) -> npt.NDArray[np.uint8]:
    """Any input image -> the size x size uint8 grayscale the network sees."""
    return resize_gray(to_gray_uint8(image), size)


def to_network_input(
    grays: Sequence[npt.NDArray[np.uint8]], backbone: str
) -> npt.NDArray[np.float32]:
    """Stack prepared grayscale images into an (N, 1, S, S) float32 array in [0, 1].

    Channel replication and mean/std normalisation happen inside the network, so the
    exported ONNX graph takes this single-channel tensor.
    """
    batch = np.stack([g.astype(np.float32) / 255.0 for g in grays])[:, None]
    return np.ascontiguousarray(batch)
