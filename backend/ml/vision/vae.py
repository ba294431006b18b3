"""The published feature VAE: globally pooled backbone features -> 256-d latent -> recon."""

from __future__ import annotations

import torch
from torch import nn


def vae_widths(feature_dim: int) -> tuple[int, int]:
    """Hidden widths scaled from the published VGG16 design (512 -> 512 -> 384 -> 256)."""
    return feature_dim, (feature_dim * 3) // 4


def _layer(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.GELU(), nn.Dropout(dropout)
    )


class FeatureVAE(nn.Module):
    """VAE over standardised pooled features (LayerNorm + GELU + Dropout 0.1, symmetric decoder)."""

    feat_mean: torch.Tensor
    feat_std: torch.Tensor

    def __init__(self, feature_dim: int, latent_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        h1, h2 = vae_widths(feature_dim)
        self.feature_dim = feature_dim
        self.latent_dim = latent_dim
        # Standardisation of the input features (fitted on training normals).
        self.register_buffer("feat_mean", torch.zeros(feature_dim))
        self.register_buffer("feat_std", torch.ones(feature_dim))
        self.encoder = nn.Sequential(_layer(feature_dim, h1, dropout), _layer(h1, h2, dropout))
        self.fc_mu = nn.Linear(h2, latent_dim)
        self.fc_logvar = nn.Linear(h2, latent_dim)
        self.decoder = nn.Sequential(
            _layer(latent_dim, h2, dropout), _layer(h2, h1, dropout), nn.Linear(h1, feature_dim)
        )

    def standardise(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.feat_mean) / self.feat_std

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-12.0, 8.0)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(
        self, feats: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (standardised input, reconstruction, mu, logvar); samples only when training."""
        x = self.standardise(feats)
        mu, logvar = self.encode(x)
        z = self.reparameterise(mu, logvar) if self.training else mu
        return x, self.decoder(z), mu, logvar

    def scores(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample reconstruction error (MSE), KL divergence and the latent mean."""
        x, recon, mu, logvar = self.forward(feats)
        rec = ((recon - x) ** 2).mean(dim=1)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
        return rec, kl, mu


def vae_loss(
    x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1e-3
) -> torch.Tensor:
    rec = ((recon - x) ** 2).mean(dim=1)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return (rec + beta * kl).mean()
