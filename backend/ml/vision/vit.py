"""The published ViT scorer over the VAE latent.

8 tokens of 32, d_model 128, [CLS] + positional embeddings, 6 blocks, 8 heads, MLP 512.

Attention is written with plain matmuls (no fused kernels) so the same graph exports to ONNX.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, d_model: int, heads: int, mlp: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.proj(y))
        out: torch.Tensor = x + self.drop(self.mlp(self.norm2(x)))
        return out


class LatentViT(nn.Module):
    """Splits a 256-d latent into 8 tokens of 32 and scores abnormality in [0, 1]."""

    def __init__(
        self,
        latent_dim: int = 256,
        n_tokens: int = 8,
        d_model: int = 128,
        depth: int = 6,
        heads: int = 8,
        mlp: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if latent_dim % n_tokens:
            raise ValueError("latent_dim must divide into n_tokens")
        self.n_tokens = n_tokens
        self.token_dim = latent_dim // n_tokens
        self.embed = nn.Linear(self.token_dim, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = nn.Parameter(torch.zeros(1, n_tokens + 1, d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.blocks = nn.ModuleList([_Block(d_model, heads, mlp, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(z.reshape(z.shape[0], self.n_tokens, self.token_dim))
        x = torch.cat([self.cls.expand(z.shape[0], -1, -1), tokens], dim=1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        out: torch.Tensor = self.head(self.norm(x[:, 0])).squeeze(1)
        return out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))
