"""Heatmaps from the patch anomaly map (spatial backbone features), regions, and the 3-panel PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .preprocessing import clahe, to_gray_uint8

HEATMAP_SIGMA = 4.0  # Gaussian smoothing (in 224-px network pixels), as in PatchCore
REGION_LEVEL = 0.5  # regions are connected components of heatmap >= this
MAX_REGIONS = 5
HEATMAP_JPEG_QUALITY = 90
FALLBACK_MIN = 0.25  # below this peak heat no region is proposed at all
REGION_BORDER = 0.08  # fraction of height/width on each side where no region is proposed


def heatmap_from_patch_map(
    patch_map: npt.NDArray[np.floating[Any]],
    lo: float,
    hi: float,
    out_hw: tuple[int, int],
    net_size: int,
) -> npt.NDArray[np.float32]:
    """Patch distances -> [0, 1] heatmap at the original image size.

    The scale is absolute, not per image: ``lo`` (median normal patch distance) maps to 0 and
    ``hi`` (99.9th percentile of normal patch distances) to 1, so a normal image stays dark.
    """
    m = cv2.resize(
        np.asarray(patch_map, np.float32), (net_size, net_size), interpolation=cv2.INTER_LINEAR
    )
    m = cv2.GaussianBlur(m, (0, 0), HEATMAP_SIGMA)
    m = np.clip((m - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    h, w = out_hw
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def top_regions(
    heatmap: npt.NDArray[np.float32], level: float = REGION_LEVEL, border: float = REGION_BORDER
) -> list[dict[str, float]]:
    """Boxes (original pixels) around connected hot areas, confidence = peak heat, best first.

    Regions are proposed inside the image minus a ``border`` band on each side: the edges hold
    side markers, collimation, arms and the collar, which the patch model rightly finds unusual
    but which are not findings. The heatmap itself is left unmasked.
    """
    h, w = heatmap.shape
    by, bx = int(round(h * border)), int(round(w * border))
    heatmap = heatmap.copy()
    heatmap[:by], heatmap[h - by :], heatmap[:, :bx], heatmap[:, w - bx :] = 0, 0, 0, 0
    peak_all = float(heatmap.max())
    if peak_all < level and peak_all >= FALLBACK_MIN:
        # Nothing reaches the absolute level: outline the hottest interior area instead
        # (its confidence, the peak heat, says how weak it is).
        level = max(FALLBACK_MIN, 0.7 * peak_all)
    mask = (heatmap >= level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = 0.002 * heatmap.size
    regions = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < min_area:
            continue
        peak = float(heatmap[labels == i].max())
        regions.append(
            {
                "x": float(x),
                "y": float(y),
                "width": float(bw),
                "height": float(bh),
                "confidence": round(peak, 4),
            }
        )
    regions.sort(key=lambda r: -r["confidence"])
    return regions[:MAX_REGIONS]


def _colourise(heatmap: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    grey = (np.clip(heatmap, 0, 1) * 255).astype(np.uint8)
    return np.asarray(cv2.applyColorMap(grey, cv2.COLORMAP_JET), dtype=np.uint8)


def render_heatmap_panels(
    image: npt.NDArray[np.uint8],
    heatmap: npt.NDArray[np.float32],
    regions: Sequence[Mapping[str, float]] | None = None,
) -> bytes:
    """JPEG (quality 90) with three panels: original with CLAHE | heatmap | overlay.

    ``regions`` (in ``image``'s pixels) are outlined on the overlay: pass the result's own
    ``top_regions`` (scaled), which keep clear of the film's edges inside a trimmed frame;
    without them they are recomputed from the heatmap.

    Heat is shown where >= 0.2. JPEG, not PNG: the noisy radiograph panels made a 256-pixel
    PNG ≈ 340 KB and 6 ms to encode; this JPEG is ≈ 50 KB in 0.4 ms, and every result read
    carries it inline (base64). ``to_png`` converts when a lossless file is wanted.
    """
    gray = clahe(to_gray_uint8(image))
    h, w = gray.shape
    if heatmap.shape != (h, w):
        resized = cv2.resize(heatmap.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        heatmap = np.asarray(resized, dtype=np.float32)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    heat = _colourise(heatmap)
    alpha = (np.clip((heatmap - 0.2) / 0.8, 0, 1) * 0.6)[:, :, None]
    overlay = (base * (1 - alpha) + heat * alpha).astype(np.uint8)
    for r in top_regions(heatmap) if regions is None else regions:
        x, y, bw, bh = int(r["x"]), int(r["y"]), int(r["width"]), int(r["height"])
        cv2.rectangle(overlay, (x, y), (x + bw - 1, y + bh - 1), (255, 255, 255), max(1, w // 256))
    gap = np.full((h, max(2, w // 64), 3), 255, np.uint8)
    panel = np.concatenate([base, gap, heat, gap, overlay], axis=1)
    ok, buf = cv2.imencode(".jpg", panel, [cv2.IMWRITE_JPEG_QUALITY, HEATMAP_JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


def image_media_type(data: bytes) -> str | None:
    """ "image/jpeg" or "image/png" from the bytes' signature, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def to_png(data: bytes) -> bytes:
    """Re-encode an image (the JPEG panels) as PNG."""
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("not a decodable image")
    ok, buf = cv2.imencode(".png", decoded)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return bytes(buf)
