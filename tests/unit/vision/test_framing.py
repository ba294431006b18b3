"""Uniform frames (letterboxing, padding, shutters) are trimmed before scoring.

A letterboxed or padded export (a black field around the film) made abnormal X-rays look
normal to the pooled kNN: the robustness table's zoom-out shift had sensitivity 0.66 against
0.82 before frames were trimmed.
"""

from __future__ import annotations

import numpy as np

from backend.ml.vision import VisionScorer
from backend.ml.vision.heatmap import REGION_BORDER
from backend.ml.vision.preprocessing import frame_box


def _letterbox(im: np.ndarray, fraction: float = 0.8, value: int = 0) -> np.ndarray:
    import cv2

    h, w = im.shape
    sh, sw = round(h * fraction), round(w * fraction)
    out = np.full_like(im, value)
    y, x = (h - sh) // 2, (w - sw) // 2
    out[y : y + sh, x : x + sw] = cv2.resize(im, (sw, sh), interpolation=cv2.INTER_AREA)
    return out


def test_frame_box_finds_dark_and_bright_frames_and_leaves_films_alone(fixtures) -> None:
    rng = np.random.default_rng(0)
    film = rng.integers(60, 200, (200, 160), dtype=np.uint8)
    framed = np.zeros((260, 220), np.uint8)  # 30 px black top and bottom
    framed[:, :30] = framed[:, 190:] = 250  # a white shutter left and right
    framed[30:230, 30:190] = film
    framed[5, 40:43] = 255  # a few marker pixels do not stop the trim
    assert frame_box(framed) == (30, 230, 30, 190)
    # A frame is trimmed by at most a quarter of each side.
    assert frame_box(np.zeros((100, 80), np.uint8)) == (25, 75, 20, 60)
    for _, _, im in fixtures:
        top, bottom, left, right = frame_box(im)
        assert (bottom - top) * (right - left) >= 0.9 * im.size


def test_a_black_border_does_not_hide_disease(scorer: VisionScorer, fixtures) -> None:
    images = [im for _, _, im in fixtures]
    boxed = [_letterbox(im) for im in images]
    plain, framed = scorer.score_batch(images), scorer.score_batch(boxed)
    for (fid, finding, im), a, b in zip(fixtures, plain, framed, strict=True):
        # The film itself is 80% as large, so it loses detail: scores move a few points.
        assert abs(a.anomaly_score - b.anomaly_score) < 12.0, (fid, finding)
        if finding != "Normal" and a.risk_level == "HIGH":
            assert b.risk_level == "HIGH", fid
        # The heatmap keeps the input's size and is cold over the frame; regions keep clear of
        # the film's own edge band, as they do of an unframed image's.
        assert b.heatmap.shape == im.shape
        top, bottom, left, right = frame_box(_letterbox(im))
        assert float(b.heatmap[:top].max(initial=0.0)) == 0.0
        assert float(b.heatmap[:, right:].max(initial=0.0)) == 0.0
        band_y = round(REGION_BORDER * (bottom - top))
        band_x = round(REGION_BORDER * (right - left))
        for box in b.top_regions:
            assert top + band_y <= box["y"] and box["y"] + box["height"] <= bottom - band_y
            assert left + band_x <= box["x"] and box["x"] + box["width"] <= right - band_x


def test_the_panel_outlines_the_results_regions(scorer: VisionScorer, fixtures) -> None:
    """The pipeline draws the result's own regions (kept off a framed film's edges), not ones
    recomputed from the whole heatmap."""
    import cv2

    from backend.ml.vision import render_heatmap_panels

    im = _letterbox(fixtures[3][2])
    heat = scorer.score_batch([im])[0].heatmap
    box = {"x": 100.0, "y": 90.0, "width": 30.0, "height": 20.0}

    def overlay(regions: list[dict[str, float]]) -> np.ndarray:
        panel = cv2.imdecode(
            np.frombuffer(render_heatmap_panels(im, heat, regions), np.uint8), cv2.IMREAD_COLOR
        )
        return panel[:, -im.shape[1] :].astype(np.int16)

    drawn = np.abs(overlay([box]) - overlay([])).max(axis=2) > 60
    ys, xs = np.nonzero(drawn)
    assert len(ys) > 0
    assert 88 <= ys.min() and ys.max() <= 111 and 98 <= xs.min() and xs.max() <= 131
