"""What a language-model tier is told: rules, the analysis, recent turns and the passages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from backend.ml.rag.analysis_facts import AnalysisFacts, facts_text
from backend.ml.rag.intents import Intent
from backend.ml.rag.safety import scrub_pii
from backend.ml.rag.types import Passage

SYSTEM_PROMPT = """You are MedSight's assistant, helping a patient or clinician understand a chest \
X-ray triage analysis. MedSight is decision support, not a diagnosis.
Rules:
- Never give medication doses, amounts, strengths or schedules (no mg, tablets, puffs, "twice a \
day", "every 6 hours"). If asked, say that only their clinician or pharmacist can set a dose.
- Do not diagnose. Explain what the analysis shows and what it cannot show.
- Use only the analysis and the reference passages below for medical facts. Cite a passage you \
use as [PMID 12345678] or [MedQuAD/<source>]. If they do not answer the question, say so.
- Only discuss chest and lung health and this analysis; politely decline anything else.
- Advise urgent care for severe breathlessness, chest pain, coughing blood or confusion.
- Be brief: at most about 150 words, plain language."""

MAX_HISTORY_TURNS = 6
MAX_PASSAGE_CHARS = 900


@dataclass
class PromptInput:
    """Everything a generator may use for one answer."""

    message: str
    intent: Intent
    facts: AnalysisFacts | None
    passages: Sequence[Passage]
    history: Sequence[tuple[str, str]] = field(default_factory=list)


@dataclass
class LLMPrompt:
    """A system instruction plus chat turns, roles "user"/"assistant", the last one the user's."""

    system: str
    turns: list[tuple[str, str]]


def _passages_block(passages: Sequence[Passage]) -> str:
    if not passages:
        return "Reference passages: none found."
    lines = ["Reference passages:"]
    for p in passages:
        text = p.text if len(p.text) <= MAX_PASSAGE_CHARS else p.text[:MAX_PASSAGE_CHARS] + "..."
        lines.append(f"[{p.citation}] {p.title}: {text}")
    return "\n".join(lines)


def build_llm_prompt(inp: PromptInput, *, scrub: bool) -> LLMPrompt:
    """The prompt for a language-model tier; `scrub` removes identifiers (cloud tiers)."""

    def clean(text: str) -> str:
        return scrub_pii(text).text if scrub else text

    turns: list[tuple[str, str]] = []
    for role, text in list(inp.history)[-MAX_HISTORY_TURNS:]:
        turns.append(("assistant" if role == "assistant" else "user", clean(text)))
    # Passages are public corpus text (and their PMIDs must survive), so only the analysis, the
    # history and the question are scrubbed.
    context = (
        f"Analysis of this session:\n{clean(facts_text(inp.facts))}\n\n"
        f"{_passages_block(inp.passages)}"
    )
    turns.append(("user", f"{context}\n\nQuestion: {clean(inp.message)}"))
    return LLMPrompt(system=SYSTEM_PROMPT, turns=turns)
