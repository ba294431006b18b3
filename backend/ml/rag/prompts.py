"""What a language-model tier is told: rules, the analysis, recent turns and the passages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from backend.ml.rag.analysis_facts import AnalysisFacts, earlier_text, facts_text
from backend.ml.rag.intents import Intent
from backend.ml.rag.safety import scrub_pii
from backend.ml.rag.types import Passage, PastAnalysis

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
    earlier: Sequence[PastAnalysis] = field(default_factory=list)
    session_id: str | None = None

    def earlier_block(self) -> str | None:
        """The user's earlier analyses, for a question that refers to them."""
        if self.intent is not Intent.HISTORY:
            return None
        return earlier_text(self.earlier, self.session_id)


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
    earlier = inp.earlier_block()
    context = (
        f"Analysis of this session:\n{clean(facts_text(inp.facts))}\n\n"
        + (f"{earlier}\n\n" if earlier else "")
        + _passages_block(inp.passages)
    )
    turns.append(("user", f"{context}\n\nQuestion: {clean(inp.message)}"))
    return LLMPrompt(system=SYSTEM_PROMPT, turns=turns)


# A 135M-parameter model follows a few short rules and loses the thread in a long context, so
# the local tier gets its own prompt: the two best passages, trimmed, and the question.
LOCAL_SYSTEM_PROMPT = """You answer questions about chest and lung health for MedSight, a \
decision-support tool. Use only the facts in the text given. Answer in two or three short \
sentences, reusing the text's own words. Never give medicine doses. If the text does not answer \
the question, say so."""
LOCAL_PASSAGES = 2
LOCAL_PASSAGE_CHARS = 600


def build_local_prompt(inp: PromptInput, *, scrub: bool) -> LLMPrompt:
    """The local tier's short prompt: the analysis (when attached), two passages, the question."""

    def clean(text: str) -> str:
        return scrub_pii(text).text if scrub else text

    blocks: list[str] = []
    if inp.facts is not None:
        blocks.append(f"Analysis:\n{clean(facts_text(inp.facts))}")
    earlier = inp.earlier_block()
    if earlier:
        blocks.append(earlier)
    for p in list(inp.passages)[:LOCAL_PASSAGES]:
        text = p.text
        if len(text) > LOCAL_PASSAGE_CHARS:
            text = text[:LOCAL_PASSAGE_CHARS].rsplit(" ", 1)[0] + "..."
        blocks.append(f"Text about {p.title}:\n{text}")
    context = "\n\n".join(blocks) or "No text was found."
    return LLMPrompt(
        system=LOCAL_SYSTEM_PROMPT,
        turns=[("user", f"{context}\n\nQuestion: {clean(inp.message)}")],
    )
