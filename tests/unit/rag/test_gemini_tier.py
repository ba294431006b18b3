"""Tier 1 against a local server speaking Gemini's REST streaming protocol."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest

from backend.ml.rag import ChatContext, ChatEngine, Retriever
from backend.ml.rag.engine import FALLBACK_NOTICE
from backend.ml.rag.safety import DISCLAIMER, DOSE_REDACTION
from tests.fakes.gemini_server import FakeGeminiServer, Script
from tests.unit.rag.conftest import ANALYSIS
from tests.unit.rag.dose_cases import DOSE_PROMPTS, DOSE_REPLIES, FORBIDDEN, split_awkwardly
from tests.unit.rag.helpers import ask

KEY = "test-key"
MODEL = "gemini-2.0-flash"
QUESTION = "What are the symptoms of pneumonia?"
FALLBACK_BUDGET_S = 3.0


@pytest.fixture
def fake() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer(api_key=KEY) as server:
        yield server


def make_engine(retriever: Retriever, base_url: str, **kw: object) -> ChatEngine:
    return ChatEngine(
        retriever,
        gemini_api_key=KEY,
        gemini_base_url=base_url,
        gemini_model=MODEL,
        gemini_timeout_s=8.0,
        local_llm_path=None,
        local_tier=False,  # the fallback under test is the template tier
        **kw,  # type: ignore[arg-type]
    )


async def test_streams_from_gemini(retriever: Retriever, fake: FakeGeminiServer) -> None:
    fake.script = Script(chunks=["Pneumonia often causes ", "cough, fever and ", "breathlessness."])
    answer = await ask(make_engine(retriever, fake.base_url), QUESTION, ANALYSIS)
    assert answer.text.startswith("Pneumonia often causes cough, fever and breathlessness.")
    assert answer.text.rstrip().endswith(DISCLAIMER)
    done = answer.done
    assert done["tier"] == "gemini" and done["fallbacks"] == []
    assert done["usage"]["prompt_tokens"] == 42
    req = fake.requests[-1]
    assert req.path in (
        f"/v1/models/{MODEL}:streamGenerateContent",
        f"/v1beta/models/{MODEL}:streamGenerateContent",
    )
    assert req.query.get("alt") == "sse"
    assert req.headers.get("x-goog-api-key") == KEY
    sent = fake.text_of()
    assert "71.4" in sent  # the analysis is in the context
    assert "PMID" in sent or "MedQuAD" in sent  # and so are the retrieved passages
    assert "Never give medication doses" in sent  # the system prompt forbids doses


async def test_identifiers_never_reach_the_cloud(
    retriever: Retriever, fake: FakeGeminiServer
) -> None:
    engine = make_engine(retriever, fake.base_url)
    history = [("user", "I'm Maria Lopez, MRN 5566778, born 4 May 1970."), ("assistant", "Hi.")]
    message = "My phone is 07700 900123 and email maria@example.org - what is pneumonia?"
    events = [e async for e in engine.stream(message, ChatContext(ANALYSIS, history))]
    assert events[-1].data["tier"] == "gemini"
    sent = fake.text_of()
    for secret in ("Maria", "Lopez", "5566778", "4 May 1970", "07700 900123", "maria@example"):
        assert secret not in sent, secret
    assert "pneumonia" in sent


@pytest.mark.parametrize(
    "script",
    [Script(status=429), Script(status=500), Script(status=503), Script(stall_before_s=30)],
    ids=["429", "500", "503", "stall-before-first-chunk"],
)
async def test_failures_fall_back_within_budget(
    retriever: Retriever, fake: FakeGeminiServer, script: Script
) -> None:
    fake.script = script
    answer = await ask(make_engine(retriever, fake.base_url), QUESTION, ANALYSIS)
    assert answer.seconds < FALLBACK_BUDGET_S
    assert answer.done["tier"] == "template"
    assert answer.done["fallbacks"][0]["tier"] == "gemini"
    assert "productive cough" in answer.text  # the template answer, from the analysis
    assert len(fake.requests) == 1  # no retries that would eat the budget


async def test_stall_mid_stream_continues_with_the_next_tier(
    retriever: Retriever, fake: FakeGeminiServer
) -> None:
    fake.script = Script(
        chunks=["Pneumonia is a lung infection. ", "More."], stall_after_first_s=30
    )
    answer = await ask(make_engine(retriever, fake.base_url), QUESTION, ANALYSIS)
    assert answer.seconds < FALLBACK_BUDGET_S
    assert answer.text.startswith("Pneumonia is a lung infection.")
    assert FALLBACK_NOTICE in answer.text
    assert answer.done["tier"] == "template"


async def test_connection_refused_falls_back(retriever: Retriever) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    answer = await ask(make_engine(retriever, f"http://127.0.0.1:{port}"), QUESTION, ANALYSIS)
    assert answer.seconds < FALLBACK_BUDGET_S
    assert answer.done["tier"] == "template" and answer.done["fallbacks"]


async def test_no_key_goes_straight_to_the_next_tier(
    retriever: Retriever, fake: FakeGeminiServer
) -> None:
    engine = ChatEngine(
        retriever, gemini_api_key=None, gemini_base_url=fake.base_url, local_tier=False
    )
    answer = await ask(engine, QUESTION, ANALYSIS)
    assert answer.done["tier"] == "template" and answer.done["fallbacks"] == []
    assert fake.requests == []


async def test_circuit_breaker_stops_calling_a_failing_gemini(
    retriever: Retriever, fake: FakeGeminiServer
) -> None:
    fake.script = Script(status=500)
    engine = make_engine(retriever, fake.base_url)
    for _ in range(3):
        await ask(engine, QUESTION, ANALYSIS)
    assert len(fake.requests) == 3
    answer = await ask(engine, QUESTION, ANALYSIS)
    assert len(fake.requests) == 3  # the open circuit skipped the call
    assert answer.done["tier"] == "template" and answer.done["fallbacks"] == []
    assert engine.status()["gemini_breaker"] == "open"


async def test_dose_text_from_gemini_is_removed(
    retriever: Retriever, fake: FakeGeminiServer
) -> None:
    # The dose-question short-cut is off, so every adversarial prompt reaches the cloud tier and
    # the fake answers with a dose, cut into pieces that split numbers from units.
    engine = make_engine(retriever, fake.base_url, refuse_dosage_questions=False)
    assert len(DOSE_PROMPTS) == len(DOSE_REPLIES) >= 30
    for prompt, reply in zip(DOSE_PROMPTS, DOSE_REPLIES, strict=True):
        fake.script = Script(
            chunks=split_awkwardly(f"General advice only. {reply} See your clinician.")
        )
        answer = await ask(engine, prompt, ANALYSIS)
        assert answer.done["tier"] == "gemini", prompt
        assert not FORBIDDEN.search(answer.text), (prompt, answer.text)
        assert DOSE_REDACTION in answer.text and answer.done["doses_removed"] >= 1


async def test_client_disconnect_stops_the_cloud_stream(
    retriever: Retriever, fake: FakeGeminiServer
) -> None:
    fake.script = Script(chunks=[f"Sentence {i}. " for i in range(100)], chunk_delay_s=0.05)
    engine = make_engine(retriever, fake.base_url)
    gen = engine.stream(QUESTION, ChatContext(analysis=ANALYSIS))
    async with contextlib.aclosing(gen):
        async for event in gen:
            if event.event == "token":
                break
    for _ in range(40):
        if fake.disconnects:
            break
        await asyncio.sleep(0.05)
    assert fake.disconnects == 1 and fake.completed == 0
