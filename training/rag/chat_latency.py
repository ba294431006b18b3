"""Template-tier latency: retrieval + first token, measured through the real engine.

python -m training.rag.chat_latency --chroma .cache/rag/chroma-full
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from backend.contract import load_result
from backend.ml.embeddings import load_minilm
from backend.ml.rag import ChatContext, ChatEngine, open_retriever

MESSAGES = [
    "What does my score mean?",
    "What does the heatmap show?",
    "What is pneumonia?",
    "What are the symptoms of COPD?",
    "Is this serious?",
    "What should I do next?",
    "How is tuberculosis treated?",
    "How accurate is this?",
]
ANALYSIS = load_result(
    {
        "session_id": "bench",
        "overall_status": "COMPLETE",
        "vision": {
            "anomaly_score": 71.4,
            "threshold": 55.0,
            "risk_level": "HIGH",
            "model_confidence": 0.6,
        },
        "fusion": {
            "final_risk": "HIGH",
            "alignment": "strong",
            "image_text_similarity": 0.8,
            "disagreement": False,
        },
    }
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _run(chroma: Path, rounds: int) -> None:
    embedder = load_minilm()
    retriever = open_retriever(chroma, embedder)
    engine = ChatEngine(retriever, gemini_api_key=None)
    context = ChatContext(analysis=ANALYSIS)
    for m in MESSAGES:  # warm-up: thread pool, caches
        [e async for e in engine.stream(m, context)]
    first: list[float] = []
    total: list[float] = []
    search: list[float] = []
    for _ in range(rounds):
        for m in MESSAGES:
            t = time.perf_counter()
            retriever.search(m, 4)
            search.append((time.perf_counter() - t) * 1000)
            events = [e async for e in engine.stream(m, context)]
            first.append(events[-1].data["first_token_ms"])
            total.append(events[-1].data["latency_ms"])
    for name, xs in (("retrieval", search), ("first token", first), ("whole answer", total)):
        print(
            f"{name:>13}: p50 {statistics.median(xs):6.1f} ms  p95 {_pct(xs, 0.95):6.1f} ms"
            f"  (n={len(xs)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chroma", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(_run(args.chroma, args.rounds))


if __name__ == "__main__":
    main()
