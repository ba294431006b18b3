"""Report generation timings: PDF (target p50 <= 200 ms) and FHIR bundle, on a realistic result.

Run from the repository root:  .venv/bin/python -m bench.report [--runs 30]
The result is the report tests' fixture: the real X-ray dev-0009 with a three-panel heatmap PNG
(CLAHE original | colormapped blob | overlay) built with OpenCV, at the X-ray's own 256 px and
at the pipeline's largest panel size (512 px a side).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.contract import load_result
from backend.reports.fhir import build_fhir_bundle
from backend.reports.pdf import render_pdf
from tests.unit.reports.sample import XRAY, make_result, three_panels


def _time(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    out: Any = None
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, out


def _p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--xray", type=Path, default=XRAY)
    args = parser.parse_args()
    if args.runs < 20:
        parser.error("use at least 20 runs")

    raw, panels = three_panels(args.xray)
    result = load_result(make_result(panels, hashlib.sha256(raw).hexdigest()))
    _, big_panels = three_panels(args.xray, side=512)  # the pipeline's HEATMAP_MAX_SIDE
    big = load_result(make_result(big_panels, hashlib.sha256(raw).hexdigest()))
    stored = make_result(panels, hashlib.sha256(raw).hexdigest())
    stored["vision"]["heatmap_base64"] = None  # same report without the image panels
    text_only = load_result(stored)

    start = time.perf_counter()
    pdf = render_pdf(result, original_png=raw)
    cold = (time.perf_counter() - start) * 1000

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("pdf (3 panels, realistic)", lambda: render_pdf(result, original_png=raw)),
        ("pdf (3 x 512 px panels)", lambda: render_pdf(big)),
        ("pdf without image panels", lambda: render_pdf(text_only)),
        ("fhir bundle", lambda: build_fhir_bundle(result)),
        ("fhir bundle + pdf", lambda: build_fhir_bundle(result, pdf=pdf)),
    ]
    print(
        f"x-ray {args.xray.name}, heatmap PNG {len(panels) / 1024:.0f} KiB (3 x 256 px), "
        f"{len(big_panels) / 1024:.0f} KiB (3 x 512 px), runs {args.runs}"
    )
    print(f"first (cold) pdf render: {cold:.1f} ms, PDF {len(pdf) / 1024:.0f} KiB")
    print(f"{'case':28} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    p50s: dict[str, float] = {}
    for name, fn in cases:
        times, _ = _time(fn, args.runs)
        p50s[name] = _p(times, 0.5)
        print(f"{name:28} {p50s[name]:8.1f} {_p(times, 0.95):8.1f} {statistics.mean(times):8.1f}")
    full = p50s["pdf (3 panels, realistic)"]
    ratio = full / p50s["pdf without image panels"]
    print(f"image panels cost: x{ratio:.2f} over the text-only PDF")
    worst = max(full, p50s["pdf (3 x 512 px panels)"])
    print(f"pdf p50 target <= 200 ms: {'PASS' if worst <= 200 else 'FAIL'} (worst {worst:.1f} ms)")


if __name__ == "__main__":
    main()
