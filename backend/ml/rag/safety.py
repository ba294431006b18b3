"""Safety for every chat tier: the dose post-filter, PII scrubbing, the disclaimer, refusals."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

DISCLAIMER = (
    "MedSight chat offers decision support, not a diagnosis: please discuss any result or "
    "concern with a qualified clinician."
)
DOSE_REDACTION = "[dosing details removed: ask your clinician or pharmacist]"
DOSAGE_REFUSAL = (
    "I can't give medication doses or schedules. How much of a medicine to take, and how often, "
    "depends on your history, other medicines, kidney and liver function and more, so only your "
    "clinician or pharmacist can set it. I can explain your analysis or general information "
    "about chest conditions."
)
OFF_TOPIC_REFUSAL = (
    "I can only help with questions about chest and lung health and your MedSight analysis, so I "
    "won't answer that one. Try asking what your score means, what the heatmap shows, or about a "
    "chest condition."
)
WEAK_RETRIEVAL_REFUSAL = (
    "I couldn't find reliable information about that in MedSight's reference library, so I "
    "won't guess. Please ask your clinician, or rephrase the question around your analysis or a "
    "specific chest condition."
)

# --- dose and frequency instructions ----------------------------------------------------------
_NUM = r"\d+(?:[.,]\d+)?(?:\s*(?:-|–|to|or)\s*\d+(?:[.,]\d+)?)?"
_WORDNUM = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|hundred|half|a\s+half|one\s+and\s+a\s+half|a\s+couple\s+of|a\s+single)"
)
_UNIT = (
    r"(?:mg|mgs|milligrams?|mcg|µg|μg|ug|micrograms?|g|gm|grams?|kg|ml|mls|millilit(?:er|re)s?|"
    r"cc|l|lit(?:er|re)s?|iu|units?|meq|mmol|tablets?|tabs?|pills?|capsules?|caps?|puffs?|"
    r"inhalations?|drops?|sprays?|teaspoons?|tsps?|tablespoons?|tbsps?|doses?|sachets?|"
    r"patch(?:es)?|lozenges?|ampoules?|vials?|injections?|shots?|nebuli[sz]ations?|nebs?|"
    r"mg/kg|mcg/kg|mg/m2|ml/kg)"
)
_COUNTABLE = (
    r"(?:tablets?|tabs?|pills?|capsules?|puffs?|inhalations?|drops?|sprays?|teaspoons?|"
    r"tablespoons?|doses?|sachets?|patch(?:es)?|lozenges?|injections?|shots?|spoonfuls?|"
    r"milligrams?|micrograms?|grams?|millilit(?:er|re)s?)"
)
_PERIOD = r"(?:day|daily|week|weekly|hour|hourly|night|nightly|morning|evening|meal|month)"
_TIMES = r"(?:once|twice|thrice|(?:\d+|one|two|three|four|five|six)\s*(?:times|x))"
_DOSE_PATTERNS = [
    # 500 mg, 2.5mg, 1-2 tablets, 10 ml/kg, 400 to 800 mg
    rf"(?<![\w.]){_NUM}\s*{_UNIT}(?:\s*/\s*(?:kg|day|d|dose|m2))?\b",
    # two tablets, half a pill, a single dose, one puff
    rf"\b{_WORDNUM}\s+(?:an?\s+)?{_COUNTABLE}\b",
    # twice a day, 3 times per day, once daily, three times weekly
    rf"\b{_TIMES}\s+(?:(?:a|an|per|each|every)\s+)?{_PERIOD}\b",
    # every 6 hours, every four to six hours, every other day
    r"\bevery\s+(?:\d+|one|two|three|four|five|six|eight|twelve|twenty-four|other)"
    r"(?:\s*(?:-|–|to|or)\s*(?:\d+|two|three|four|five|six|eight|twelve))?\s*"
    r"(?:hours?|hrs?|h|days?|weeks?|minutes?|mins?|nights?)\b",
    # per day / a day after a number: 4 g per day
    rf"(?<![\w.]){_NUM}\s*(?:\w+\s+){{0,2}}(?:per|a|each)\s+(?:day|24\s*h(?:ours?)?)\b",
    # dose words followed closely by a number: "the dose is 5", "dosage: 10"
    r"\bdos(?:e|es|age|ing)\b[^.!?\n\d]{0,30}\d",
    r"\b(?:maximum|max)\s+(?:of\s+)?\d",
]
_DOSE_RE = re.compile("|".join(f"(?:{p})" for p in _DOSE_PATTERNS), re.IGNORECASE)
# Prescription abbreviations are only matched in capitals or with dots ("bid" is also a word).
_ABBREV_RE = re.compile(
    r"\b(?:BID|TID|QID|QD|QHS|QAM|QPM|PRN|Q\s?\d{1,2}\s?H|"
    r"b\.i\.d\.?|t\.i\.d\.?|q\.i\.d\.?|q\.d\.?|q\.h\.s\.?|p\.r\.n\.?|q\.?\d{1,2}h)(?!\w)"
)


def contains_dose_instruction(text: str) -> bool:
    """True when `text` states an amount or schedule of a medicine."""
    return bool(_DOSE_RE.search(text) or _ABBREV_RE.search(text))


def redact_doses(text: str) -> tuple[str, int]:
    """Replace each sentence that states a dose or schedule; returns (text, sentences removed)."""
    if not contains_dose_instruction(text):
        return text, 0
    pieces = _SENTENCE_SPLIT.split(text)
    out: list[str] = []
    removed = 0
    for piece in pieces:
        if piece.strip() and contains_dose_instruction(piece):
            removed += 1
            lead = piece[: len(piece) - len(piece.lstrip())]
            trail = piece[len(piece.rstrip()) :]
            # Consecutive removed sentences collapse into one notice.
            if out and out[-1].strip() == DOSE_REDACTION:
                out[-1] = out[-1].rstrip() + trail
                continue
            out.append(f"{lead}{DOSE_REDACTION}{trail}")
        else:
            out.append(piece)
    return "".join(out), removed


# Split after sentence punctuation or at line breaks, keeping the separators with the text.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])(?=\s)|(?<=\n)")
_BOUNDARY = re.compile(r"[.!?](?=\s)|\n")


@dataclass
class StreamingDoseFilter:
    """Redacts dose instructions in a token stream, even when split across tokens.

    Text is held until a sentence ends, then the whole sentence is checked; only checked text
    leaves. A run-on without punctuation is released in pieces, always holding back the last
    `holdback` characters so a dose phrase cannot straddle a release point.
    """

    max_buffer: int = 400
    holdback: int = 120
    removed: int = 0
    _buffer: str = field(default="", repr=False)

    def feed(self, text: str) -> str:
        """Add streamed text; return the part that is safe to emit now (may be empty)."""
        self._buffer += text
        boundaries = list(_BOUNDARY.finditer(self._buffer))
        if boundaries:
            cut = boundaries[-1].end()
            ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
            return self._check(ready)
        if len(self._buffer) > self.max_buffer:
            # Whole buffer is checked first: a match anywhere removes all of it.
            if contains_dose_instruction(self._buffer):
                self._buffer = ""
                self.removed += 1
                return DOSE_REDACTION + " "
            cut = self._buffer.rfind(" ", 0, len(self._buffer) - self.holdback)
            if cut > 0:
                ready, self._buffer = self._buffer[: cut + 1], self._buffer[cut + 1 :]
                return ready
        return ""

    def flush(self) -> str:
        """Release whatever is left at the end of the stream, checked."""
        ready, self._buffer = self._buffer, ""
        return self._check(ready) if ready else ""

    def _check(self, text: str) -> str:
        clean, n = redact_doses(text)
        self.removed += n
        return clean


# --- personal identifiers --------------------------------------------------------------------
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_NAME = r"[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){0,2}"
_PII_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    (
        "ID",
        re.compile(
            r"\b(?:MRN|medical\s+record(?:\s+(?:number|no\.?))?|record\s+(?:number|no\.?|#)|"
            r"patient\s+(?:id|number|no\.?)|hospital\s+(?:number|no\.?)|NHS\s+(?:number|no\.?)|"
            r"SSN|social\s+security(?:\s+number)?|insurance\s+(?:id|number)|chart\s+(?:number|#))"
            r"\s*(?:is|:|#|no\.?|number)?\s*[A-Z0-9][A-Z0-9-]{3,}",
            re.IGNORECASE,
        ),
    ),
    ("ID", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    (
        "DATE",
        re.compile(
            rf"\b(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}(?P<sep>[/.-])\d{{1,2}}(?P=sep)\d{{2,4}}|"
            rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?|"
            rf"{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|{_MONTH}\s+\d{{4}})\b",
            re.IGNORECASE,
        ),
    ),
    (
        "PHONE",
        re.compile(
            r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,3}"
            r"(?![\w.])"
        ),
    ),
    ("ID", re.compile(r"\b[A-Z]{0,3}\d{6,}\b")),
    # Names after a title or an introduction; the name itself must be capitalised.
    (
        "NAME",
        re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame)\.?\s+{_NAME}"),
    ),
    (
        "NAME",
        re.compile(
            rf"(?i:\b(?:my\s+name\s+is|name\s*:|patient\s*:|i\s+am|i'm|this\s+is|called|"
            rf"named|my\s+(?:son|daughter|wife|husband|mother|father|mum|mom|dad|partner|"
            rf"brother|sister|child|friend|grandmother|grandfather|doctor|gp))\s+)(?P<name>{_NAME})"
        ),
    ),
]
# Words that look like names after "I am"/"I'm" but are not ("I'm Worried" at a sentence start).
_NOT_NAMES = frozenset(
    "A An The Not Worried Scared Afraid Concerned Sick Ill Fine Okay Ok So Very Just Still Also "
    "Having Feeling Getting Going Trying Asking Wondering Curious Confused Pregnant Diabetic "
    "Asthmatic Allergic Here Back".split()
)


@dataclass
class ScrubResult:
    text: str
    counts: dict[str, int]


def scrub_pii(
    text: str, *, person_spans: Callable[[str], list[tuple[int, int]]] | None = None
) -> ScrubResult:
    """Replace names, dates, record numbers, phones and e-mails with [NAME], [DATE], ...

    Rules catch the common shapes; `person_spans` (e.g. a spaCy PERSON tagger) can add names
    the rules miss. Used on everything sent to a cloud tier.
    """
    counts: dict[str, int] = {}
    if person_spans is not None:
        for start, end in sorted(person_spans(text), reverse=True):
            text = text[:start] + "[NAME]" + text[end:]
            counts["NAME"] = counts.get("NAME", 0) + 1
    for label, pattern in _PII_PATTERNS:

        def replace(m: re.Match[str], label: str = label) -> str:
            name = m.groupdict().get("name")
            if name:  # introduction patterns: keep the introduction, replace the name
                if name.split()[0] in _NOT_NAMES:
                    return m.group(0)
                counts[label] = counts.get(label, 0) + 1
                return m.group(0)[: m.start("name") - m.start(0)] + f"[{label}]"
            if label == "PHONE" and sum(ch.isdigit() for ch in m.group(0)) < 7:
                return m.group(0)  # short number groups are measurements, not phones
            counts[label] = counts.get(label, 0) + 1
            return f"[{label}]"

        text = pattern.sub(replace, text)
    return ScrubResult(text=text, counts=counts)
