"""Small parts: circuit breaker, analysis reading, chunking, BM25, the engine without a corpus."""

from __future__ import annotations

from backend.ml.rag import ChatEngine
from backend.ml.rag.analysis_facts import analysis_facts, facts_text
from backend.ml.rag.bm25 import BM25Index
from backend.ml.rag.generators import CircuitBreaker
from backend.ml.rag.safety import WEAK_RETRIEVAL_REFUSAL
from backend.ml.rag.text import chunk_text, split_sentences
from tests.unit.rag.conftest import ANALYSIS
from tests.unit.rag.helpers import ask


def test_breaker_opens_then_half_opens_then_closes() -> None:
    now = [0.0]
    b = CircuitBreaker(threshold=2, cooldown_s=10, clock=lambda: now[0])
    b.record_failure()
    assert b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    now[0] = 10.5
    assert b.state == "half-open" and b.allow()
    b.record_failure()  # the trial call failed: open again for a full cool-down
    assert not b.allow()
    now[0] = 21.0
    b.record_success()
    assert b.state == "closed" and b.failures == 0


def test_analysis_facts_reads_the_result_and_reports_gaps() -> None:
    facts = analysis_facts(ANALYSIS)
    assert facts is not None
    assert facts.score == 71.4 and facts.threshold == 55.0 and facts.risk == "HIGH"
    assert facts.components == {"vae": 68.2, "vit": 74.6}
    assert facts.findings == ["productive cough", "fever"] and facts.denied == ["chest pain"]
    assert facts.final_risk == "HIGH" and facts.missing == []
    text = facts_text(facts)
    assert "71.4/100" in text and "iVBOR" not in text  # no heatmap bytes in a prompt
    partial = analysis_facts(ANALYSIS.model_copy(update={"nlp": None, "fusion": None}))
    assert partial is not None and partial.score == 71.4 and partial.missing == ["nlp", "fusion"]
    assert analysis_facts(None) is None


def test_chunks_are_balanced_and_sentence_aligned() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(30))

    def count(sentences: object) -> list[int]:
        return [len(s.split()) for s in sentences]  # type: ignore[attr-defined]

    chunks = chunk_text(text, count, max_tokens=50)
    sizes = [len(c.split()) for c in chunks]
    assert len(chunks) == 3 and max(sizes) <= 50 and min(sizes) >= 40
    assert " ".join(chunks) == text
    assert all(c.endswith(".") for c in chunks)
    assert split_sentences("It rose (p < 0.05). Then 3 fell. e.g. this") == [
        "It rose (p < 0.05).",
        "Then 3 fell. e.g. this",
    ]


def test_bm25_ranks_the_document_with_the_rare_terms_first() -> None:
    docs = [
        "Pneumothorax is air in the pleural space causing lung collapse.",
        "Asthma causes wheezing and airway inflammation.",
        "The lungs exchange oxygen and carbon dioxide.",
    ]
    index = BM25Index(docs)
    assert [i for i, _ in index.top("collapsed lung from a pneumothorax", 3)][0] == 0
    assert index.top("wheezing asthmatic airways", 1)[0][0] == 1
    assert index.top("unrelated words entirely", 3) == []


async def test_engine_without_a_corpus_still_explains_the_analysis() -> None:
    engine = ChatEngine(None, gemini_api_key=None, local_tier=False)
    score = await ask(engine, "What does my score mean?", ANALYSIS)
    assert "71.4" in score.text and score.done["tier"] == "template"
    knowledge = await ask(engine, "What is pneumonia?", ANALYSIS)
    assert knowledge.done["refusal"] == "weak_retrieval"
    assert WEAK_RETRIEVAL_REFUSAL in knowledge.text
