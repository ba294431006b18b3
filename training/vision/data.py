"""Reading the cxr-dev layout (manifest.csv + images/<id>.png) and plain image folders."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Record:
    id: str
    label: str  # "normal" | "abnormal"
    finding: str
    split: str
    path: Path


def read_manifest(data_dir: Path) -> list[Record]:
    """Rows of ``manifest.csv``; images are ``images/<id>.png``."""
    data_dir = Path(data_dir)
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found (expected the cxr-dev layout)")
    out: list[Record] = []
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = data_dir / "images" / f"{row['id']}.png"
            if not path.is_file():  # fixtures/ keeps images beside its manifest
                path = data_dir / f"{row['id']}.png"
            out.append(Record(row["id"], row["label"], row["finding"], row["split"], path))
    return out


def list_images(folder: Path) -> list[Path]:
    """Image files directly in (or below) a folder, sorted for reproducibility."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory")
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def load_gray(path: Path) -> npt.NDArray[np.uint8]:
    """Decode an image file to 2-D uint8 grayscale (16-bit PNGs are rescaled)."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError(f"cannot decode image {path}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr[:, :, :3], cv2.COLOR_BGR2GRAY)
    if arr.dtype != np.uint8:
        a = arr.astype(np.float32)
        a = (a - a.min()) / max(float(a.max() - a.min()), 1e-6) * 255.0
        arr = a.astype(np.uint8)
    return arr  # type: ignore[no-any-return]


def digest_files(paths: list[Path]) -> str:
    """sha256 over (name, bytes) of the given files: identifies the training data."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()
