"""Patch-level normality model (PatchCore-style): locally aggregated mid-level features,
a greedy coreset memory bank of normal patches, nearest-neighbour distances per patch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm


def patch_embed(mid: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
    """(N,Cm,H,W) + (N,Cd,H/2,W/2) -> (N,H,W,Cm+Cd): 3x3-aggregated, deep upsampled to mid grid."""
    mid = F.avg_pool2d(mid.float(), 3, stride=1, padding=1, count_include_pad=False)
    deep = F.avg_pool2d(deep.float(), 3, stride=1, padding=1, count_include_pad=False)
    deep = F.interpolate(deep, size=mid.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([mid, deep], dim=1).permute(0, 2, 3, 1)


def greedy_coreset(
    feats: torch.Tensor, n: int, *, proj_dim: int = 32, seed: int = 0, progress: bool = True
) -> torch.Tensor:
    """Indices of an approximate greedy k-centre coreset (PatchCore) of ``n`` rows of ``feats``.

    Distances are computed in a random ``proj_dim``-d projection (Johnson-Lindenstrauss), as in
    PatchCore, with the |x|^2 - 2 x.c + |c|^2 expansion so each step is one mat-vec.
    """
    total = feats.shape[0]
    if n >= total:
        return torch.arange(total)
    g = torch.Generator().manual_seed(seed)
    x = feats.float()
    if x.shape[1] > proj_dim:
        x = x @ (torch.randn(x.shape[1], proj_dim, generator=g) / proj_dim**0.5)
    xsq = (x * x).sum(1)
    start = int(torch.randint(total, (1,), generator=g))
    mind = (xsq - 2.0 * (x @ x[start]) + xsq[start]).clamp_min(0)
    idx = torch.empty(n, dtype=torch.long)
    idx[0] = start
    it = tqdm(range(1, n), desc="coreset", disable=not progress, mininterval=2.0)
    for k in it:
        i = int(torch.argmax(mind))
        idx[k] = i
        torch.minimum(mind, xsq - 2.0 * (x @ x[i]) + xsq[i], out=mind)
    return idx


def nn_distance(query: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance from each query row to its nearest bank row (chunked)."""
    bank = bank.float()
    bsq = (bank**2).sum(1)
    out = []
    for i in range(0, query.shape[0], chunk):
        q = query[i : i + chunk].float()
        d2 = (q**2).sum(1, keepdim=True) - 2.0 * q @ bank.T + bsq[None]
        out.append(d2.min(dim=1).values.clamp_min(0).sqrt())
    return torch.cat(out)
