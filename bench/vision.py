"""Vision scorer latency: ONNX Runtime vs torch eager, side by side, on the 6 real fixtures.

    python bench/vision.py [--model-dir DIR] [--iters 40] [--fixtures DIR]

Per-image latency is the full ``score_batch`` (preprocessing, network, fusion, heatmap map at the
original size, top regions); PNG rendering of the three panels is timed separately.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.ml.vision import load_scorer, render_heatmap_panels  # noqa: E402
from training.vision.data import list_images, load_gray  # noqa: E402


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument(
        "--fixtures", type=Path, default=ROOT.parent / "shared" / "data" / "cxr-dev" / "fixtures"
    )
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    images = [load_gray(p) for p in list_images(args.fixtures)]
    print(
        f"# vision bench: {platform.processor() or platform.machine()}, "
        f"torch threads {torch.get_num_threads()}, "
        f"{len(images)} fixtures {images[0].shape}"
    )
    rows = []
    for backend in ("onnx", "torch"):
        t = time.perf_counter()
        scorer = load_scorer(args.model_dir, backend=backend)
        load_s = time.perf_counter() - t
        for i in range(5):
            scorer.score_batch([images[i % len(images)]])
        lat = []
        for i in range(args.iters):
            t = time.perf_counter()
            scorer.score_batch([images[i % len(images)]])
            lat.append((time.perf_counter() - t) * 1000)
        batch = [images[i % len(images)] for i in range(args.batch)]
        scorer.score_batch(batch)
        reps = max(2, args.iters // 10)
        t = time.perf_counter()
        for _ in range(reps):
            res = scorer.score_batch(batch)
        ips = reps * args.batch / (time.perf_counter() - t)
        png = []
        for i in range(10):
            t = time.perf_counter()
            render_heatmap_panels(images[i % len(images)], res[i % len(res)].heatmap)
            png.append((time.perf_counter() - t) * 1000)
        rows.append((backend, _pct(lat, 50), _pct(lat, 95), ips, statistics.median(png), load_s))
    print(
        f"{'backend':8s} {'b1 p50 ms':>10s} {'b1 p95 ms':>10s} {'b16 img/s':>10s} "
        f"{'png ms':>8s} {'load s':>7s}"
    )
    for b, p50, p95, ips, png_ms, load_s in rows:
        print(f"{b:8s} {p50:10.1f} {p95:10.1f} {ips:10.1f} {png_ms:8.1f} {load_s:7.1f}")


if __name__ == "__main__":
    main()
