"""Vision anomaly detector: EfficientNet-Lite0 features, patch memory bank, pooled kNN, the
published VAE + latent ViT, a calibrated fused score, spatial heatmaps and an OOD gate."""

from .backbones import BackboneWeightsMissing, build_backbone
from .checkpoint import ChecksumMismatch
from .heatmap import image_media_type, render_heatmap_panels, to_png
from .scorer import VisionResult, VisionScorer, load_scorer

__all__ = [
    "BackboneWeightsMissing",
    "ChecksumMismatch",
    "VisionResult",
    "VisionScorer",
    "build_backbone",
    "load_scorer",
    "image_media_type",
    "render_heatmap_panels",
    "to_png",
]
