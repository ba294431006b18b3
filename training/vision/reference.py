"""What the scorer uses to define "normal": patch coreset bank, pooled kNN bank, z-score stats.

Used by training (train normals) and by site calibration (a new site's normals). Statistics
come from images the bank did not see (cross-fitting), so held-out normals' scores look like
those of new normal patients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from backend.ml.vision.fusion import patch_score
from backend.ml.vision.patchcore import greedy_coreset, nn_distance, patch_embed

CORESET_CANDIDATES = 160_000  # random patches the greedy coreset chooses from


def embed_all(mid: np.ndarray, deep: np.ndarray, chunk: int = 250) -> torch.Tensor:
    """Patch embeddings (N, H, W, C) as fp16 to keep memory small."""
    out = []
    for i in range(0, len(mid), chunk):
        out.append(
            patch_embed(
                torch.from_numpy(mid[i : i + chunk]), torch.from_numpy(deep[i : i + chunk])
            ).half()
        )
    return torch.cat(out)


def bank_size(n_patches: int, size: int) -> int:
    """The coreset size build_patch_bank gives: at most 10% of the candidates (PatchCore 1-10%)."""
    return min(size, max(1, min(CORESET_CANDIDATES, n_patches) // 10))


def build_patch_bank(
    emb: torch.Tensor, size: int, seed: int, progress: bool = True, *, exact: bool = False
) -> torch.Tensor:
    """Greedy coreset of `size` patches (capped by bank_size unless `exact`)."""
    flat = emb.reshape(-1, emb.shape[-1])
    g = torch.Generator().manual_seed(seed)
    n_cand = min(CORESET_CANDIDATES, len(flat))
    cand = flat[torch.randperm(len(flat), generator=g)[:n_cand]].float()
    size = min(size, n_cand) if exact else bank_size(len(flat), size)
    return cand[greedy_coreset(cand, size, seed=seed, progress=progress)]


def patch_maps(emb: torch.Tensor, bank: torch.Tensor, chunk_images: int = 64) -> np.ndarray:
    n, h, w, c = emb.shape
    out = []
    for i in range(0, n, chunk_images):
        q = emb[i : i + chunk_images].reshape(-1, c).float()
        out.append(nn_distance(q, bank).reshape(-1, h, w).numpy())
    return np.concatenate(out)


def knn_scores(
    query: np.ndarray, bank: np.ndarray, k: int, exclude_self: bool = False
) -> np.ndarray:
    q = query / np.linalg.norm(query, axis=1, keepdims=True).clip(1e-8)
    b = bank / np.linalg.norm(bank, axis=1, keepdims=True).clip(1e-8)
    sim = q @ b.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    top = -np.partition(-sim, k - 1, axis=1)[:, :k]
    return 1.0 - top.mean(axis=1)


def fit_normal_reference(
    emb: torch.Tensor,
    knn_feats: np.ndarray,
    ood_feats: np.ndarray,
    *,
    coreset_size: int,
    knn_k: int,
    seed: int,
    n_folds: int = 2,
    max_heldout: int = 1000,
    progress: bool = True,
    matched_folds: bool = False,
) -> dict[str, Any]:
    """Banks from all normals + cross-fitted held-out patch maps and leave-one-out kNN scores.

    Each fold's coreset is proportional to its training folds (`heldout_patch`: the
    convention the shipped z-statistics, and so its Platt map, were fitted with). But a
    held-out image's nearest-patch distance grows as the coreset shrinks, so those held-out
    normals score higher than new normals will against the final bank. With `matched_folds`
    the held-out images are also scored against fold banks of exactly the final bank's size
    (`heldout_patch_matched`): what new normals look like, for thresholds and drift references.
    On 60 site normals (5 folds) the proportional held-out patch mean sat 0.58 above new
    normals' (0.74 of its spread); matched, 0.03.
    """
    n = len(emb)
    final_size = bank_size(n * int(np.prod(emb.shape[1:-1])), coreset_size)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    folds = np.array_split(order, n_folds)
    heldout_idx: list[int] = []
    heldout_maps: list[np.ndarray] = []
    matched_maps: list[np.ndarray] = []
    per_fold = max(1, max_heldout // n_folds)
    for f, idx in enumerate(folds):
        rest = emb[torch.from_numpy(np.setdiff1d(order, idx))]
        take = emb[torch.from_numpy(idx[:per_fold])]
        size = max(256, coreset_size * len(rest) // n)
        heldout_maps.append(patch_maps(take, build_patch_bank(rest, size, seed + f + 1, progress)))
        if matched_folds:
            bank = build_patch_bank(rest, final_size, seed + f + 1, progress, exact=True)
            matched_maps.append(patch_maps(take, bank))
        heldout_idx.extend(int(i) for i in idx[:per_fold])
    maps = np.concatenate(heldout_maps)
    patch_bank = build_patch_bank(emb, coreset_size, seed, progress)
    return {
        "banks": {
            "patch_bank": patch_bank.half(),
            "knn_bank": torch.from_numpy(np.ascontiguousarray(knn_feats, np.float32)).half(),
            "ood_bank": torch.from_numpy(np.ascontiguousarray(ood_feats, np.float32)).half(),
        },
        "heldout_idx": np.array(heldout_idx),
        "heldout_maps": maps,
        "heldout_patch": patch_score(maps),
        "heldout_knn": knn_scores(knn_feats, knn_feats, knn_k, exclude_self=True),
        "heldout_ood": knn_scores(ood_feats, ood_feats, 1, exclude_self=True),
        "heldout_patch_matched": (
            patch_score(np.concatenate(matched_maps)) if matched_maps else None
        ),
        "patch_lo": float(np.median(maps)),
        "patch_hi": float(np.quantile(maps, 0.999)),
    }


def pooled_deep(deep: np.ndarray) -> np.ndarray:
    """Global average of the stride-16 feature map: the kNN descriptor."""
    return deep.astype(np.float32).mean(axis=(2, 3))
