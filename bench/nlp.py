"""Benchmark of the NLP stage: latency of ``ClinicalNLP.analyze`` on a ~500-character note.

Prints median/p95 per configuration and the share of each part, e.g.:

    python -m bench.nlp --runs 50 --threads 2

Parts timed separately: NER tagger, rules + ConText (no NER), embedding ranking, full stage
with the MiniLM ranker, and the lexical-ranking fallback. Numbers depend on the CPU and on
what else runs on it; compare only within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

# ~500 characters of clinical text (written for this benchmark).
TEXT = (
    "58-year-old male smoker presenting with a productive cough with green sputum, fever up to "
    "38.9 C and shortness of breath on exertion for five days. He reports pleuritic chest pain on "
    "the right side and night sweats but denies hemoptysis or weight loss. No history of asthma. "
    "Mother had lung cancer. On examination, crackles over the right lower lobe and reduced air "
    "entry. He takes lisinopril for hypertension and was started on amoxicillin yesterday. "
    "Possible pneumonia; rule out effusion."
)


def _time(fn: Callable[[], object], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _report(name: str, ms: list[float], base: float | None = None) -> float:
    med = statistics.median(ms)
    p95 = sorted(ms)[max(0, int(round(0.95 * len(ms))) - 1)]
    ratio = f"  x{med / base:.2f} of full" if base else ""
    print(f"{name:38s} p50 {med:7.2f} ms   p95 {p95:7.2f} ms{ratio}")  # noqa: T201
    return med


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtime", default="auto", choices=["auto", "onnx", "torch"])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from backend.config import Settings
    from backend.process import configure_process

    configure_process(Settings())  # the service's interpreter settings (GIL switch interval)
    from backend.ml.nlp import load_clinical_nlp, load_minilm_embedder

    t0 = time.perf_counter()
    embedder = load_minilm_embedder()
    full = load_clinical_nlp(embedder=embedder, runtime=args.runtime)
    print(f"load: {time.perf_counter() - t0:.1f} s; text {len(TEXT)} chars; threads {args.threads}")  # noqa: T201
    rules = load_clinical_nlp(embedder=None, runtime=args.runtime)
    tagger = full.extractor.tagger
    if tagger is None:
        raise SystemExit("the shipped NER model is missing")
    no_ner = full.extractor.__class__(None)
    ents = full.extractor.extract(TEXT)

    print(f"runtime: {full.metadata.get('runtime')}")  # noqa: T201
    base = _report(
        "full stage (NER+rules+ConText+MiniLM)",
        _time(lambda: full.analyze(TEXT), args.runs),
    )
    _report("  NER tagger (3 heads)", _time(lambda: tagger.tag_text(TEXT), args.runs), base)
    _report("  rules + ConText (no NER)", _time(lambda: no_ner.extract(TEXT), args.runs), base)
    _report(
        "  MiniLM ranking (entities given)",
        _time(lambda: full.ranker.rank(TEXT, ents), args.runs),
        base,
    )
    _report(
        "lexical fallback stage (no MiniLM)", _time(lambda: rules.analyze(TEXT), args.runs), base
    )
    res = full.analyze(TEXT)
    print(f"top: {res.primary_diagnosis} ({res.diagnosis_confidence:.2f}); target p50 <= 30 ms")  # noqa: T201


if __name__ == "__main__":
    main()
