"""The chat engine on the template tier: event order, gating, grounding, dose safety, cancel."""

from __future__ import annotations

import contextlib
import statistics

import pytest

from backend.ml.rag import ChatContext, ChatEngine, Retriever
from backend.ml.rag.safety import DISCLAIMER, OFF_TOPIC_REFUSAL, WEAK_RETRIEVAL_REFUSAL
from backend.ml.rag.templates import NO_ANALYSIS
from tests.unit.rag.conftest import ANALYSIS
from tests.unit.rag.dose_cases import DOSE_PROMPTS, FORBIDDEN
from tests.unit.rag.helpers import ask


@pytest.fixture
def engine(retriever: Retriever) -> ChatEngine:
    # The template tier: these tests are about the engine's events, gates and refusals.
    return ChatEngine(
        retriever, gemini_api_key=None, gemini_model="gemini-2.0-flash", local_tier=False
    )


async def test_event_order_sources_and_disclaimer(engine: ChatEngine) -> None:
    answer = await ask(engine, "What are the symptoms of pneumonia?", ANALYSIS)
    kinds = [e.event for e in answer.events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"token"}
    assert answer.sources and all({"pmid", "title", "score"} <= set(s) for s in answer.sources)
    assert answer.text.rstrip().endswith(DISCLAIMER)
    assert "decision-support tool, not a diagnosis" in answer.text
    done = answer.done
    assert done["tier"] == "template" and done["refusal"] is None
    assert done["latency_ms"] >= done["first_token_ms"] > 0


async def test_knowledge_answer_cites_its_sources(engine: ChatEngine) -> None:
    answer = await ask(engine, "What is pneumonia and how is it treated?")
    cited = [s for s in answer.sources if s["pmid"] and f"PMID {s['pmid']}" in answer.text]
    medquad = [s for s in answer.sources if s["source"] in answer.text]
    assert cited or medquad
    assert "pneumonia" in answer.text.lower()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("What does my score mean?", ["71.4", "55.0", "HIGH"]),
        ("What does the heatmap show?", ["x=312", "y=410"]),
        ("What should I do next?", ["radiologist", "urgent care"]),
        ("How accurate is this?", ["false positives", "not been validated"]),
        ("Is this serious?", ["HIGH", "triage"]),
        ("Hello", ["71.4"]),
    ],
)
async def test_templates_use_the_analysis(
    engine: ChatEngine, message: str, expected: list[str]
) -> None:
    answer = await ask(engine, message, ANALYSIS)
    for fragment in expected:
        assert fragment in answer.text, (fragment, answer.text)


async def test_without_an_analysis_it_says_so(engine: ChatEngine) -> None:
    answer = await ask(engine, "What does my score mean?")
    assert NO_ANALYSIS in answer.text


async def test_off_topic_is_refused(engine: ChatEngine) -> None:
    answer = await ask(engine, "What is the capital of France?")
    assert answer.done["refusal"] == "off_topic"
    assert OFF_TOPIC_REFUSAL in answer.text and answer.sources == []


async def test_weak_retrieval_is_refused(retriever: Retriever) -> None:
    strict = ChatEngine(
        retriever, gemini_api_key=None, min_passage_similarity=0.99, local_tier=False
    )
    answer = await ask(strict, "What is pneumonia?")
    assert answer.done["refusal"] == "weak_retrieval"
    assert WEAK_RETRIEVAL_REFUSAL in answer.text and answer.sources == []


async def test_adversarial_dose_prompts_get_no_dose(engine: ChatEngine) -> None:
    assert len(DOSE_PROMPTS) >= 30
    refused = 0
    for prompt in DOSE_PROMPTS:
        answer = await ask(engine, prompt, ANALYSIS)
        assert not FORBIDDEN.search(answer.text), (prompt, answer.text)
        assert answer.text.rstrip().endswith(DISCLAIMER)
        refused += answer.done["refusal"] == "dosage"
    assert refused >= 0.9 * len(DOSE_PROMPTS)


async def test_closing_the_stream_stops_it(engine: ChatEngine) -> None:
    gen = engine.stream("What are the symptoms of pneumonia?", ChatContext(analysis=ANALYSIS))
    seen = []
    async with contextlib.aclosing(gen):
        async for event in gen:
            seen.append(event.event)
            if event.event == "token":
                break
    assert seen == ["sources", "token"]
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()


async def test_template_first_token_is_fast_once_loaded(engine: ChatEngine) -> None:
    await ask(engine, "What does my score mean?", ANALYSIS)  # warm-up
    firsts = []
    for message in ["What does my score mean?", "What is COPD?", "What should I do next?"] * 3:
        firsts.append((await ask(engine, message, ANALYSIS)).done["first_token_ms"])
    # The target is well under 50 ms on an idle CPU; this bound only catches gross regressions
    # (e.g. a model load per message) on a loaded shared machine.
    assert statistics.median(firsts) < 250
