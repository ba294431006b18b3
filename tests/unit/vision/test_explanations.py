"""Sanity checks that the heatmap explains the score (Adebayo et al. randomisation; deletion)."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

from backend.ml.vision import VisionScorer
from backend.ml.vision.scorer import VisionScorer as _VS


def _randomised(scorer: VisionScorer) -> VisionScorer:
    net = copy.deepcopy(scorer.net)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.backbone.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(
                    torch.randn(m.weight.shape, generator=gen) * (2.0 / m.weight[0].numel()) ** 0.5
                )
    return _VS(net, scorer.metadata, calibration=scorer.calibration, backend="torch")


def _raw_map(scorer: VisionScorer, im: np.ndarray) -> np.ndarray:
    x, _, _ = scorer.prepare([im])
    return scorer.run_network(x, "torch")["patch_map"][0]


def test_randomising_the_backbone_changes_the_map(scorer: VisionScorer, fixtures) -> None:
    rand = _randomised(scorer)
    rhos = []
    for _, _, im in fixtures:
        a, b = _raw_map(scorer, im).ravel(), _raw_map(rand, im).ravel()
        rhos.append(spearmanr(a, b).statistic)
    assert float(np.mean(rhos)) < 0.5, rhos


def neutral_fill(im: np.ndarray) -> np.ndarray:
    """What masking fills with: the image itself, heavily blurred (documented in README)."""
    sigma = max(im.shape) / 32.0
    return cv2.GaussianBlur(im, (0, 0), sigma)


def _masked(im: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = im.copy()
    out[mask] = neutral_fill(im)[mask]
    return out


def test_masking_the_hottest_tenth_lowers_the_score_more_than_random_tenths(
    scorer: VisionScorer, fixtures
) -> None:
    rng = np.random.default_rng(0)
    top_drops, rand_drops = [], []
    for _, finding, im in fixtures:
        if finding == "Normal":
            continue
        r = scorer.score_batch([im])[0]
        hot = r.heatmap >= np.quantile(r.heatmap, 0.9)
        masked = scorer.score_batch([_masked(im, hot)])[0]
        top_drops.append(r.anomaly_score - masked.anomaly_score)
        h, w = im.shape
        side_h, side_w = int(h * 0.316), int(w * 0.316)  # a random square-ish block of 10% area
        for _ in range(4):
            y0, x0 = int(rng.integers(0, h - side_h)), int(rng.integers(0, w - side_w))
            m = np.zeros_like(hot)
            m[y0 : y0 + side_h, x0 : x0 + side_w] = True
            rand_drops.append(
                r.anomaly_score - scorer.score_batch([_masked(im, m)])[0].anomaly_score
            )
    assert np.mean(top_drops) > np.mean(rand_drops), (top_drops, rand_drops)
