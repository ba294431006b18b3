"""Backbone feature extraction, done once per image set and cached on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from backend.ml.vision.backbones import EfficientNetLite0Features, VGG16Features
from backend.ml.vision.preprocessing import PREPROCESSING_VERSION, prepare_gray, to_network_input

from .data import load_gray


def extract_features(
    backbone: EfficientNetLite0Features | VGG16Features,
    paths: Sequence[Path],
    *,
    image_size: int = 224,
    batch_size: int = 16,
    device: str = "cpu",
    desc: str = "features",
    transform=None,  # type: ignore[no-untyped-def]
) -> dict[str, np.ndarray]:
    """Return ``mid`` (N,C,H,W fp16), ``deep`` (fp16) and ``pooled`` (N,D fp32) features."""
    mids, deeps, pooled = [], [], []
    backbone = backbone.to(device).eval()
    with torch.inference_mode():
        for i in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch"):
            grays = [prepare_gray(load_gray(p), image_size) for p in paths[i : i + batch_size]]
            if transform is not None:
                grays = [transform(g, i + j) for j, g in enumerate(grays)]
            x = torch.from_numpy(to_network_input(grays, backbone.name)).to(device)
            mid, deep, top = backbone(x)
            mids.append(mid.half().cpu().numpy())
            deeps.append(deep.half().cpu().numpy())
            pooled.append(top.mean(dim=(2, 3)).float().cpu().numpy())
    return {
        "mid": np.concatenate(mids),
        "deep": np.concatenate(deeps),
        "pooled": np.concatenate(pooled),
    }


def cache_key(paths: Sequence[Path], backbone: str, image_size: int, tag: str = "") -> str:
    h = hashlib.sha256(f"{backbone}|{image_size}|{tag}|v{PREPROCESSING_VERSION}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:20]


def cached_features(
    backbone: EfficientNetLite0Features | VGG16Features,
    paths: Sequence[Path],
    cache_dir: Path | None,
    *,
    image_size: int = 224,
    device: str = "cpu",
    desc: str = "features",
    tag: str = "",
    transform=None,  # type: ignore[no-untyped-def]
) -> dict[str, np.ndarray]:
    """Extract features once; later calls with the same files/backbone read the .npz cache."""
    if cache_dir is None:
        return extract_features(
            backbone, paths, image_size=image_size, device=device, desc=desc, transform=transform
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    f = (
        cache_dir
        / f"{backbone.name}-{image_size}-{desc}-{cache_key(paths, backbone.name, image_size, tag)}"
        f".npz"
    )
    if f.is_file():
        with np.load(f) as z:
            return {k: z[k] for k in z.files}
    feats = extract_features(
        backbone, paths, image_size=image_size, device=device, desc=desc, transform=transform
    )
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, **feats)
    tmp.replace(f)
    return feats
