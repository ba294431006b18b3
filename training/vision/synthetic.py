"""Label-free synthetic anomalies for the ViT scorer (phase 2).

The published system trained its ViT with real anomaly labels; ours never sees an abnormal
image. Positives are made from NORMAL training data in two ways:

1. image-space opacities: soft-edged elliptical blobs placed inside the lung fields, blending
   the pixels towards a brighter, texture-poor level (consolidation / ground-glass-like), 1-4
   blobs, sometimes bilateral, sometimes a diffuse lower-zone haze; their pooled features go
   through the VAE encoder to give latent positives;
2. latent-space outliers: normal latents pushed off the normal manifold (random direction,
   norm drawn so they sit beyond the normals' typical radius) or extrapolated away from a
   random other normal latent.

Negatives are the latents of real normal training images.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import torch


def add_opacities(gray: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Return a copy of a (prepared, square) X-ray with synthetic airspace opacities."""
    s = gray.shape[0]
    img = gray.astype(np.float32)
    mask = np.zeros_like(img)
    n_blobs = int(rng.integers(1, 5))
    sides = [0.32, 0.68] if rng.random() < 0.5 else [float(rng.choice([0.32, 0.68]))]
    for _ in range(n_blobs):
        cx = (rng.choice(sides) + rng.normal(0, 0.06)) * s
        cy = rng.uniform(0.3, 0.8) * s
        ax, ay = rng.uniform(0.05, 0.16) * s, rng.uniform(0.06, 0.2) * s
        cv2.ellipse(
            mask,
            (int(cx), int(cy)),
            (int(ax), int(ay)),
            float(rng.uniform(0, 180)),
            0,
            360,
            1.0,
            -1,
        )
    if rng.random() < 0.25:  # diffuse lower-zone haze
        mask[int(0.55 * s) : int(0.85 * s), int(0.15 * s) : int(0.85 * s)] = np.maximum(
            mask[int(0.55 * s) : int(0.85 * s), int(0.15 * s) : int(0.85 * s)], 0.6
        )
    mask = cv2.GaussianBlur(mask, (0, 0), s * rng.uniform(0.02, 0.05))
    strength = rng.uniform(0.35, 0.8)
    level = np.percentile(img, rng.uniform(70, 92))
    smooth = cv2.GaussianBlur(img, (0, 0), s * 0.02)  # opacities wash out vessel texture
    target = 0.5 * smooth + 0.5 * level + rng.normal(0, 4.0, img.shape).astype(np.float32)
    out = img * (1 - strength * mask) + np.maximum(target, img) * (strength * mask)
    return np.clip(out, 0, 255).astype(np.uint8)


def latent_outliers(z: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """Latent-space synthetic anomalies made from normal latents ``z`` (N, D)."""
    idx = torch.randint(len(z), (n,), generator=gen)
    base = z[idx]
    std = z.std(dim=0, keepdim=True)
    half = n // 2
    direction = torch.randn(half, z.shape[1], generator=gen)
    direction = direction / direction.norm(dim=1, keepdim=True)
    radius = (torch.rand(half, 1, generator=gen) * 2.0 + 1.5) * std.norm()
    pushed = base[:half] + direction * radius * 0.5
    other = z[torch.randint(len(z), (n - half,), generator=gen)]
    alpha = torch.rand(n - half, 1, generator=gen) * 1.5 + 1.0
    extrapolated = base[half:] + alpha * (base[half:] - other)
    return torch.cat([pushed, extrapolated])
