"""Simulated acquisition shifts for robustness measurements (uint8 grayscale in, same size out).

Each shift is deterministic given the image and a seed, so a table is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

Gray = npt.NDArray[np.uint8]


def _u8(a: npt.NDArray[np.floating]) -> Gray:  # type: ignore[type-arg]
    return np.asarray(np.clip(np.rint(a), 0, 255), dtype=np.uint8)


def gamma(g: float) -> Callable[[Gray, int], Gray]:
    def f(im: Gray, _seed: int) -> Gray:
        return _u8(255.0 * (im.astype(np.float32) / 255.0) ** g)

    return f


def contrast(c: float) -> Callable[[Gray, int], Gray]:
    def f(im: Gray, _seed: int) -> Gray:
        a = im.astype(np.float32)
        return _u8((a - a.mean()) * c + a.mean())

    return f


def blur(sigma: float) -> Callable[[Gray, int], Gray]:
    def f(im: Gray, _seed: int) -> Gray:
        return np.asarray(cv2.GaussianBlur(im, (0, 0), sigma), dtype=np.uint8)

    return f


def noise(sigma: float) -> Callable[[Gray, int], Gray]:
    def f(im: Gray, seed: int) -> Gray:
        rng = np.random.default_rng(seed)
        return _u8(im.astype(np.float32) + rng.normal(0.0, sigma, im.shape))

    return f


def jpeg(quality: int) -> Callable[[Gray, int], Gray]:
    def f(im: Gray, _seed: int) -> Gray:
        ok, buf = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok  # noqa: S101
        return np.asarray(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), dtype=np.uint8)

    return f


def crop(fraction: float) -> Callable[[Gray, int], Gray]:
    """Centre crop keeping `fraction` of each side, resized back (a tighter collimation)."""

    def f(im: Gray, _seed: int) -> Gray:
        h, w = im.shape
        ch, cw = round(h * fraction), round(w * fraction)
        y, x = (h - ch) // 2, (w - cw) // 2
        return np.asarray(
            cv2.resize(im[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_LINEAR),
            dtype=np.uint8,
        )

    return f


def zoom_out(fraction: float) -> Callable[[Gray, int], Gray]:
    """The image shrunk to `fraction` of each side on a black field (a wider field of view)."""

    def f(im: Gray, _seed: int) -> Gray:
        h, w = im.shape
        sh, sw = round(h * fraction), round(w * fraction)
        out = np.zeros_like(im)
        y, x = (h - sh) // 2, (w - sw) // 2
        out[y : y + sh, x : x + sw] = cv2.resize(im, (sw, sh), interpolation=cv2.INTER_AREA)
        return out

    return f


def rotate(degrees: float) -> Callable[[Gray, int], Gray]:
    def f(im: Gray, seed: int) -> Gray:
        h, w = im.shape
        sign = 1.0 if seed % 2 == 0 else -1.0
        m = cv2.getRotationMatrix2D((w / 2, h / 2), sign * degrees, 1.0)
        return np.asarray(
            cv2.warpAffine(im, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=0),
            dtype=np.uint8,
        )

    return f


def burned_text(im: Gray, seed: int) -> Gray:
    """A side marker and a line of burned-in text, as portable units print them."""
    out = im.copy()
    h, w = im.shape
    s = w / 256.0
    rng = np.random.default_rng(seed)
    x = int(rng.integers(int(8 * s), int(40 * s)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(out, "L", (x, int(40 * s)), font, 1.2 * s, 255, max(1, int(3 * s)))
    cv2.putText(
        out, "PORTABLE AP 07:42", (int(60 * s), int(248 * s)),
        cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, 255, max(1, int(1 * s)),
    )  # fmt: skip
    return out


def invert(im: Gray, _seed: int) -> Gray:
    """MONOCHROME1 pixels read as MONOCHROME2 (bone dark, air bright)."""
    return np.asarray(255 - im, dtype=np.uint8)


def ap_portable(im: Gray, seed: int) -> Gray:
    """Portable AP-like framing: wider field, off-centre, slight tilt, scatter haze, marker."""
    h, w = im.shape
    rng = np.random.default_rng(seed)
    frac = 0.82
    sh, sw = round(h * frac), round(w * frac)
    small = cv2.resize(im, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = 0.8 * small + 0.2 * 200.0  # scatter: less contrast, brighter
    out = np.full((h, w), 12.0, np.float32)
    y = int(rng.integers(0, max(1, (h - sh) // 3)))
    x = (w - sw) // 2 + int(rng.integers(-w // 20, w // 20 + 1))
    x = int(np.clip(x, 0, w - sw))
    out[y : y + sh, x : x + sw] = small
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-4, 4)), 1.0)
    out = cv2.warpAffine(out, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=12)
    return burned_text(_u8(out), seed)


def identity(im: Gray, _seed: int) -> Gray:
    return im


SHIFTS: dict[str, Callable[[Gray, int], Gray]] = {
    "none": identity,
    "gamma 0.6 (over-exposed look)": gamma(0.6),
    "gamma 1.6 (under-exposed look)": gamma(1.6),
    "contrast x0.6": contrast(0.6),
    "contrast x1.4": contrast(1.4),
    "blur sigma 2 px": blur(2.0),
    "noise sigma 12": noise(12.0),
    "JPEG quality 15": jpeg(15),
    "crop 80% + rescale": crop(0.8),
    "zoom out to 80% (black border)": zoom_out(0.8),
    "rotation 10 deg": rotate(10.0),
    "burned-in text/marker": burned_text,
    "inverted (MONOCHROME1 unread)": invert,
    "portable AP-like framing": ap_portable,
}
