"""The whole scorer network: one forward from a preprocessed image to every raw component.

Input: (N, 1, S, S) float32 in [0, 1] (see ``preprocessing``). Outputs (all float32):

- ``patch_map``  (N, H, W): distance of each locally aggregated mid-level patch to its nearest
  normal patch in the coreset memory bank (PatchCore-style; H = W = S/8);
- ``knn``        (N,): mean cosine distance of the globally pooled stage-5 (mid-level, stride-16)
  descriptor to its k nearest normal images (val AUROC 0.952 vs 0.923 for the 1280-d head);
- ``ood``        (N,): cosine distance of the pooled 1280-d head descriptor (ImageNet semantics) to
  the nearest normal image: the out-of-distribution signal for the input gate;
- ``recon``, ``kl`` (N,): the published VAE's reconstruction error and KL divergence;
- ``vit``        (N,): the published ViT scorer's output on the VAE latent mean, in [0, 1];
- ``descriptor`` (N, D): the L2-normalised pooled stage-5 descriptor the kNN compares (the
  population check's acquisition model reads it; see ``population.py``).

Turning these into calibrated z-scores, the fused score and risk levels is cheap numpy in
``fusion.py`` so that both runtimes (torch eager, ONNX Runtime) share it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import EfficientNetLite0Features, VGG16Features
from .patchcore import patch_embed
from .vae import FeatureVAE
from .vit import LatentViT

OUTPUT_NAMES = ("patch_map", "knn", "ood", "recon", "kl", "vit", "descriptor")


class ScorerNet(nn.Module):
    patch_bank: torch.Tensor
    patch_bank_sq: torch.Tensor
    knn_bank: torch.Tensor
    ood_bank: torch.Tensor

    def __init__(
        self,
        backbone: EfficientNetLite0Features | VGG16Features,
        patch_bank: torch.Tensor,
        knn_bank: torch.Tensor,
        ood_bank: torch.Tensor,
        vae: FeatureVAE,
        vit: LatentViT,
        *,
        knn_k: int = 5,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.vae = vae
        self.vit = vit
        self.knn_k = knn_k
        self.register_buffer("patch_bank", patch_bank.float())
        self.register_buffer("patch_bank_sq", (self.patch_bank**2).sum(1))
        self.register_buffer("knn_bank", F.normalize(knn_bank.float(), dim=1))
        self.register_buffer("ood_bank", F.normalize(ood_bank.float(), dim=1))

    def set_banks(
        self,
        patch_bank: torch.Tensor,
        knn_bank: torch.Tensor,
        ood_bank: torch.Tensor,
        knn_k: int | None = None,
    ) -> None:
        """Swap the normal reference (site calibration); a small site bank has its own k."""
        if knn_k is not None:
            self.knn_k = int(knn_k)
        dev = self.patch_bank.device
        self.patch_bank = patch_bank.float().to(dev)
        self.patch_bank_sq = (self.patch_bank**2).sum(1)
        self.knn_bank = F.normalize(knn_bank.float(), dim=1).to(dev)
        self.ood_bank = F.normalize(ood_bank.float(), dim=1).to(dev)

    def patch_distances(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, H, W, C) -> (N, H, W) nearest-neighbour distance to the patch bank."""
        n, h, w, c = patches.shape
        q = patches.reshape(n * h * w, c)
        d2 = (q * q).sum(1, keepdim=True) - 2.0 * (q @ self.patch_bank.T) + self.patch_bank_sq[None]
        return d2.min(dim=1).values.clamp_min(0.0).sqrt().reshape(n, h, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mid, deep, top = self.backbone(x)
        patch_map = self.patch_distances(patch_embed(mid, deep))
        descriptor = F.normalize(deep.mean(dim=(2, 3)), dim=1)
        sim = descriptor @ self.knn_bank.T
        knn = 1.0 - torch.topk(sim, self.knn_k, dim=1).values.mean(dim=1)
        pooled = top.mean(dim=(2, 3))
        ood = 1.0 - (F.normalize(pooled, dim=1) @ self.ood_bank.T).max(dim=1).values
        rec, kl, mu = self.vae.scores(pooled)
        vit = self.vit(mu)
        return patch_map, knn, ood, rec, kl, vit, descriptor
