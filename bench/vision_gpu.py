"""Vision scorer on a CUDA GPU against the same machine's CPU, in one process.

    python bench/vision_gpu.py [--fixtures DIR] [--iters 50]

torch eager on both devices (on CPU the service prefers ONNX Runtime: bench/vision.py compares
those two). Per-image latency is the full ``score_batch`` at batch 1 (preprocessing, network,
fusion, heatmap at the original size, top regions); throughput at batches 16 and 64. On CUDA
the scorer turns TF32 off (strict fp32); its scores must agree with the CPU's within 0.1
points. `--tf32` measures CUDA once more with TF32 back on (PyTorch's default for cuDNN).
Exits 2 without CUDA.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.ml.vision import load_scorer  # noqa: E402


def _images(folder: Path) -> list[np.ndarray]:
    paths = sorted(folder.glob("*.png")) or [ROOT / "backend/imaging/samples/chest-xray.png"]
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]


def _measure(
    device: str, images: list[np.ndarray], iters: int, keep_flags: bool = False
) -> tuple[dict[str, float], list[float]]:
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    t = time.perf_counter()
    scorer = load_scorer(backend="torch", device=device)
    if keep_flags:  # the scorer turned TF32 off on CUDA: measure it as it was asked for
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    load_s = time.perf_counter() - t
    for i in range(5):
        scorer.score_batch([images[i % len(images)]])
    lat = []
    for i in range(iters):
        t = time.perf_counter()
        scorer.score_batch([images[i % len(images)]])  # returns numpy: the GPU has finished
        lat.append((time.perf_counter() - t) * 1000)
    row = {
        "load_s": load_s,
        "p50_ms": float(np.median(lat)),
        "p95_ms": float(np.percentile(lat, 95)),
    }
    for size in (16, 64):
        batch = [images[i % len(images)] for i in range(size)]
        scorer.score_batch(batch)
        reps = max(3, iters // 10)
        t = time.perf_counter()
        for _ in range(reps):
            scorer.score_batch(batch)
        row[f"b{size}_img_s"] = reps * size / (time.perf_counter() - t)
    return row, [r.anomaly_score for r in scorer.score_batch(images)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared/data/cxr-dev/fixtures")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--tf32", action="store_true", help="also measure CUDA with TF32 on")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")  # noqa: T201 - bench output
        return 2
    images = _images(args.fixtures)
    print(  # noqa: T201 - bench output
        f"# {torch.cuda.get_device_name(0)}; CPU {platform.machine()} {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); {len(images)} images"
    )
    cpu, cpu_scores = _measure("cpu", images, args.iters)
    torch.cuda.reset_peak_memory_stats()
    runs = {"cpu": (cpu, cpu_scores), "cuda fp32": _measure("cuda", images, args.iters)}
    peak_mb = torch.cuda.max_memory_allocated() / 2**20
    if args.tf32:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        runs["cuda tf32"] = _measure("cuda", images, args.iters, keep_flags=True)
    head = ("device", "b1 p50 ms", "b1 p95 ms", "b16 img/s", "b64 img/s", "load s", "max diff")
    print(f"{head[0]:10s} " + " ".join(f"{h:>10s}" for h in head[1:]))  # noqa: T201
    diffs = {}
    for name, (row, scores) in runs.items():
        diffs[name] = max(abs(a - b) for a, b in zip(cpu_scores, scores, strict=True))
        print(  # noqa: T201 - bench output
            f"{name:10s} {row['p50_ms']:10.1f} {row['p95_ms']:10.1f} {row['b16_img_s']:10.1f} "
            f"{row['b64_img_s']:10.1f} {row['load_s']:10.1f} {diffs[name]:10.4f}"
        )
    fp32 = runs["cuda fp32"][0]
    print(  # noqa: T201 - bench output
        f"cuda fp32 / cpu: b1 p50 {cpu['p50_ms'] / fp32['p50_ms']:.1f}x faster, b64 throughput "
        f"{fp32['b64_img_s'] / cpu['b64_img_s']:.1f}x; peak CUDA memory {peak_mb:.0f} MiB; "
        "max diff: largest |score difference| against the CPU, in points (fp32 must be <= 0.1)"
    )
    diff = diffs["cuda fp32"]
    return 0 if diff <= 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
