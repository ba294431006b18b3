"""Tier 3: answers composed from templates, the analysis and the retrieved passages."""

from __future__ import annotations

import re
from collections.abc import Sequence

from backend.ml.rag.analysis_facts import AnalysisFacts, earlier_text
from backend.ml.rag.intents import Intent
from backend.ml.rag.safety import DOSAGE_REFUSAL
from backend.ml.rag.text import bm25_tokens, split_sentences
from backend.ml.rag.types import Passage, PastAnalysis

NO_ANALYSIS = (
    "There is no analysis attached to this conversation yet, so I can't comment on a specific "
    "image. Once a chest X-ray has been analysed I can explain its score and heatmap."
)
_NEXT = {
    "HIGH": (
        "The result is flagged high, so the study should be prioritised for review by a "
        "radiologist and correlated with the clinical picture soon."
    ),
    "MODERATE": (
        "The result is in the moderate range: have the study reviewed by a clinician and "
        "correlate it with symptoms and an examination."
    ),
    "LOW": (
        "No image finding was flagged above the threshold. A low score does not rule out "
        "disease: if symptoms persist or get worse, see a clinician."
    ),
}
URGENT = (
    "Seek urgent care straight away for severe breathlessness, chest pain, coughing up blood, "
    "blue lips or confusion."
)


def _score_sentence(f: AnalysisFacts) -> str:
    if f.score is None:
        return "No image anomaly score is available for this analysis."
    side = ""
    if f.threshold is not None:
        side = (
            f" The decision threshold is {f.threshold:.1f}, so the score is "
            f"{'above' if f.score >= f.threshold else 'below'} it"
            + (f" and the image risk level is {f.risk}." if f.risk else ".")
        )
    return f"Your image anomaly score is {f.score:.1f} out of 100.{side}"


_BULLETS = re.compile(r"\s+-\s+|\s{2,}")


def _best_sentences(passage: Passage, query: str, n: int = 2) -> str:
    """The passage's sentences sharing most words with the question, in their original order."""
    text = _BULLETS.sub(" ", passage.text)
    sentences = [s for s in split_sentences(text) if not s.endswith("?")]
    if not sentences:
        return ""
    q = set(bm25_tokens(query))
    scored = sorted(
        range(len(sentences)),
        key=lambda i: (-len(q & set(bm25_tokens(sentences[i]))), i),
    )
    keep = sorted(scored[:n])
    text = " ".join(sentences[i] for i in keep)
    return text if len(text) <= 600 else text[:597].rsplit(" ", 1)[0] + "..."


def _similar(a: str, b: str) -> bool:
    ta, tb = set(bm25_tokens(a)), set(bm25_tokens(b))
    return bool(ta and tb) and len(ta & tb) / len(ta | tb) > 0.5


def _evidence(passages: Sequence[Passage], query: str, n: int = 2) -> list[str]:
    """Up to `n` distinct passages (near-duplicates skipped), plus the best PubMed one if none
    of those has a PMID, so research evidence is cited beside consumer pages."""
    chosen: list[tuple[Passage, str]] = []
    for p in passages:
        text = _best_sentences(p, query)
        if not text or any(_similar(text, t) for _, t in chosen):
            continue
        if len(chosen) < n or (p.pmid and not any(c.pmid for c, _ in chosen)):
            chosen.append((p, text))
        if len(chosen) > n:
            break
    return [f"{text} ({p.citation})" for p, text in chosen]


def _explain_score(f: AnalysisFacts | None) -> list[str]:
    if f is None:
        return [NO_ANALYSIS]
    parts = [
        _score_sentence(f),
        "The score measures how different the image looks from the chest X-rays the model "
        "learned as normal; it is not the probability of any particular disease.",
    ]
    if f.components:
        comps = ", ".join(f"{k} {v:.2f}" for k, v in f.components.items())
        parts.append(f"It combines {len(f.components)} component scores: {comps}.")
    if f.confidence is not None:
        parts.append(
            f"The model's confidence is {f.confidence:.0%}: it is low near the threshold and "
            "rises the further the score is from it."
        )
    if f.is_chest_xray is False:
        parts.append(
            "The image did not look like a typical chest X-ray, so treat the score with extra "
            "caution."
        )
    if f.final_risk:
        parts.append(
            f"Combined with the symptom text (agreement: {f.alignment or 'unknown'}), the "
            f"overall risk is {f.final_risk}."
        )
    if f.disagreement:
        parts.append("The image and the symptoms point in different directions: review both.")
    return parts


def _explain_heatmap(f: AnalysisFacts | None) -> list[str]:
    if f is None:
        return [NO_ANALYSIS]
    parts = [
        "The heatmap colours the parts of the image that raised the anomaly score most: warmer "
        "colours contributed more. It shows where the model's attention went, not what a "
        "finding is.",
    ]
    if f.regions:
        r = f.regions[0]
        parts.append(
            f"It highlights {len(f.regions)} region(s); the strongest is around "
            f"x={r.get('x', 0):.0f}, y={r.get('y', 0):.0f} (about "
            f"{r.get('width', 0):.0f} by {r.get('height', 0):.0f} pixels)."
        )
    elif f.score is None:
        parts.append("No heatmap is available for this analysis.")
    else:
        parts.append("No region stood out strongly in this image.")
    parts.append(
        "Highlighted areas can come from devices, markers or positioning as well as disease, "
        "so a radiologist needs to review them."
    )
    return parts


def _next_steps(f: AnalysisFacts | None, passages: Sequence[Passage], query: str) -> list[str]:
    parts: list[str] = []
    risk = f.overall_risk if f else None
    parts.append(_NEXT.get(risk or "", "Discuss the result with your clinician."))
    if f and f.disagreement:
        parts.append("The image and the symptoms disagree, which is itself a reason for review.")
    parts.append(URGENT)
    return parts


def _limitations(f: AnalysisFacts | None) -> list[str]:
    parts = [
        "MedSight's image model was developed on a limited research data set. It can miss "
        "disease (false negatives) and flag normal images (false positives), and it has not been "
        "validated for clinical use.",
        "The score compares the image with normal X-rays; it does not name a disease. The "
        "heatmap is an approximate explanation, and the symptom analysis only reads the words "
        "you typed.",
    ]
    if f is not None and f.is_chest_xray is False:
        parts.append(
            "This image did not look like a typical chest X-ray, which makes it less reliable."
        )
    if f is not None and f.missing:
        parts.append(
            "Part of this analysis is missing (" + ", ".join(f.missing) + "): do not read a "
            "missing part as a normal finding."
        )
    return parts


def _symptoms(f: AnalysisFacts | None, passages: Sequence[Passage], query: str) -> list[str]:
    parts: list[str] = []
    if f is not None and f.findings:
        parts.append("Your symptom text mentions " + ", ".join(f.findings) + ".")
    if f is not None and f.denied:
        parts.append("It says you do not have " + ", ".join(f.denied) + ".")
    evidence = _evidence(passages, query)
    if evidence:
        parts.append("From the reference library:")
        parts += evidence
    if not parts:
        parts.append("I have no symptom information or reference material for that question.")
    return parts


def _risk(f: AnalysisFacts | None, passages: Sequence[Passage], query: str) -> list[str]:
    parts: list[str] = []
    if f is not None and f.overall_risk:
        parts.append(
            f"For this analysis the {'combined' if f.final_risk else 'image'} risk level is "
            f"{f.overall_risk}."
        )
        if f.score is not None:
            parts.append(_score_sentence(f))
        parts.append(
            "This is a triage signal for prioritising review, not a prediction of how an illness "
            "will go."
        )
    evidence = _evidence(passages, query)
    if evidence:
        parts.append("From the reference library:")
        parts += evidence
    if not parts:
        parts.append("I have no analysis or reference material to judge that risk.")
    return parts


def _knowledge(f: AnalysisFacts | None, passages: Sequence[Passage], query: str) -> list[str]:
    evidence = _evidence(passages, query)
    if not evidence:
        return ["I found nothing in the reference library that answers this."]
    parts = ["Here is what the reference library says:", *evidence]
    if f is not None and f.differential:
        top = f.differential[0][0]
        parts.append(
            f"Your symptom text was ranked closest to {top}, but that ranking is not a diagnosis."
        )
    return parts


def _greeting(f: AnalysisFacts | None) -> list[str]:
    parts = [
        "Hello! I'm MedSight's assistant. I can explain your analysis (the anomaly score, the "
        "heatmap and sensible next steps) and share general information about chest conditions "
        "from a library of PubMed abstracts and NIH pages."
    ]
    if f is not None and f.score is not None:
        parts.append(_score_sentence(f))
    return parts


HISTORY_CAVEAT = (
    "A change in the score between two X-rays can come from the images themselves (position, "
    "exposure, a different machine) as well as from the lungs, so it is not a diagnosis: your "
    "clinician can compare the images directly."
)


def _history(earlier: Sequence[PastAnalysis], current_id: str | None) -> list[str]:
    if not earlier:
        return [
            "I found no earlier finished analyses with a score on your account, so there is "
            "nothing to compare yet."
        ]
    listed = "; ".join(
        f"{a.created_at:%Y-%m-%d} score {a.anomaly_score:.1f}"
        + (f" ({a.risk_level})" if a.risk_level else "")
        + (" (this one)" if a.session_id == current_id else "")
        for a in earlier
    )
    lines = earlier_text(earlier, current_id).splitlines()[1 + len(earlier) :]
    return [f"Your analyses with a score, oldest first: {listed}.", *lines, HISTORY_CAVEAT]


def template_answer(
    intent: Intent,
    message: str,
    facts: AnalysisFacts | None,
    passages: Sequence[Passage],
    earlier: Sequence[PastAnalysis] = (),
    current_id: str | None = None,
) -> str:
    """The full answer text for one intent (the engine streams it and adds the disclaimer)."""
    if intent is Intent.HISTORY:
        parts = _history(earlier, current_id)
    elif intent is Intent.GREETING:
        parts = _greeting(facts)
    elif intent is Intent.DOSAGE:
        parts = [DOSAGE_REFUSAL]
    elif intent is Intent.EXPLAIN_SCORE:
        parts = _explain_score(facts)
    elif intent is Intent.EXPLAIN_HEATMAP:
        parts = _explain_heatmap(facts)
    elif intent is Intent.NEXT_STEPS:
        parts = _next_steps(facts, passages, message)
    elif intent is Intent.LIMITATIONS:
        parts = _limitations(facts)
    elif intent is Intent.SYMPTOMS:
        parts = _symptoms(facts, passages, message)
    elif intent is Intent.RISK:
        parts = _risk(facts, passages, message)
    else:  # CONDITION_INFO and OTHER questions the library can answer
        parts = _knowledge(facts, passages, message)
    return " ".join(parts)
