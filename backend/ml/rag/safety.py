"""Safety for every chat tier: the dose post-filter, PII scrubbing, the disclaimer, refusals."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.contract import DISCLAIMER as PRODUCT_DISCLAIMER
from backend.ml.rag.normalise import folded_variants

# The product's one disclaimer (the chat adds it to every answer).
DISCLAIMER = PRODUCT_DISCLAIMER
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
# Amounts without a unit are still instructions when tied to taking or to a time of day:
# "Take 500 at breakfast, lunch and dinner", "2 in the morning".
_AMOUNT = (
    r"(?:\d+(?:[.,]\d+)?(?:\s*(?:-|–|to|or)\s*\d+(?:[.,]\d+)?)?|one|two|three|four|five|six|"
    r"seven|eight|nine|ten|half|a\s+half)"
)
_MEALTIME = (
    r"(?:breakfast|lunch|dinner|supper|tea\s*time|bed\s*time|night|meals?|food|"
    r"(?:each|every)\s+meal|waking|the\s+morning|the\s+evening|the\s+afternoon)"
)
_NOT_A_DOSE_AFTER = (
    r"(?:%|percent|years?|yrs?|days?|weeks?|months?|minutes?|mins?|hours?|hrs?|seconds?|secs?|"
    r"breaths?|steps?|deep|slow|sips?|tests?|x-?rays?|scans?|times?\s+(?:longer|more)|people|"
    r"patients?|of\b|or\s+more\b|more\b|other\b|times?\b)"
)
_UNITLESS_PATTERNS = [
    # 500 at breakfast / 2 with meals / one before bed / two in the morning
    rf"(?<![\w.]){_AMOUNT}\s+(?:at|with|before|after|in|by|on)\s+{_MEALTIME}\b",
    # take 500 / give two / inhale 2 (an amount straight after a verb of taking)
    rf"\b(?:take|takes|taking|give|giving|use|using|inhale|swallow|administer|chew|"
    rf"dissolve|inject|apply|double|increase\s+to|reduce\s+to|start\s+(?:on|with|at))\s+"
    rf"(?:(?:it|them|the|your|of|about|around|roughly|up\s+to|another|only|just)\s+){{0,2}}"
    rf"(?>{_AMOUNT})(?![\w.,]\d)(?!\s*{_NOT_A_DOSE_AFTER})",
]
# Other languages (Spanish, French, German, Portuguese, Italian): schedules and counted forms.
_FOREIGN_PATTERNS = [
    r"\b(?:cada|toutes\s+les|alle|ogni)\s+\d+(?:\s*-\s*\d+)?\s*"
    r"(?:h|hrs?|horas?|heures?|stunden?|ore)\b",
    r"\b(?:\d+|una?|dos|tres|cuatro|une?|deux|trois|quatre|ein|zwei|drei|vier|uma|duas|"
    r"tr[eê]s|due|tre)\s*(?:veces|vez|fois|mal|x|vezes|volte)\s+"
    r"(?:al|por|par|pro|am|ao|a|il|täglich|taglich|diario|diarias?|jour|tag|dia|giorno)\b",
    r"\b(?:\d+|una?|dos|tres|media|medio|une?|deux|trois|demi|ein|eine|zwei|drei|halbe|"
    r"uma|duas|meio|meia|due|tre|mezza)\s+(?:comprimid[oa]s?|pastillas?|tabletas?|"
    r"c[aá]psulas?|gotas?|inhalaciones?|sobres?|comprim[eé]s?|g[eé]lules?|gouttes?|bouff[eé]es?|"
    r"sachets?|tabletten?|kapseln?|tropfen|h[uü]be?|compresse|capsule|gocce|puffs?)\b",
    r"(?<![\w.])\d+(?:[.,]\d+)?\s*\w*\s+(?:al|por|par|pro|ao|al)\s+"
    r"(?:d[ií]a|jour|tag|dia|giorno)\b",
    r"\b(?:dosis|posolog[ií]a|posologie|dosierung|dosagem|dosaggio)\b[^.!?\n\d]{0,30}\d",
    # take (tome, prenez, nehmen, prenda...) followed closely by an amount
    r"\b(?:tome|toma|tomar|tomen|tomad|prenez|prendre|prends|nehmen|nimm|prenda|prendi|"
    r"prendere|tomem)\b[^.!?\n\d]{0,25}(?<![\w.])\d",
    # an amount with a meal: 500 con el desayuno, 2 avec le repas, 1 zum Frühstück
    r"(?<![\w.])\d+(?:[.,]\d+)?\s+(?:con|en|antes\s+del?|despu[eé]s\s+del?|avec|au|apr[eè]s|"
    r"avant|mit|zum|zur|nach\s+dem|vor\s+dem|com|ao|no|col|a|dopo|prima\s+di)\s+"
    r"(?:el|la|los|las|le|les|dem|der|o|os|il|i|lo)?\s*(?:desayuno|comida|cena|almuerzo|"
    r"comidas|petit[- ]d[ée]jeuner|d[ée]jeuner|d[iî]ner|repas|fr[üu]hst[üu]ck|mittagessen|"
    r"abendessen|essen|mahlzeit(?:en)?|caf[eé]\s+da\s+manh[aã]|almo[cç]o|jantar|"
    r"refei[cç][oõ]es|colazione|pranzo|pasti|pasto)\b",
]
_DOSE_RE = re.compile(
    "|".join(f"(?:{p})" for p in (*_DOSE_PATTERNS, *_UNITLESS_PATTERNS, *_FOREIGN_PATTERNS)),
    re.IGNORECASE,
)
# Prescription abbreviations are only matched in capitals or with dots ("bid" is also a word).
_ABBREV_RE = re.compile(
    r"\b(?:BID|TID|QID|QD|QHS|QAM|QPM|PRN|Q\s?\d{1,2}\s?H|"
    r"b\.i\.d\.?|t\.i\.d\.?|q\.i\.d\.?|q\.d\.?|q\.h\.s\.?|p\.r\.n\.?|q\.?\d{1,2}h)(?!\w)"
)
# ... and in lower case right after an amount or a dose unit ("500 mg tid", "2 puffs prn").
_ABBREV_AFTER_DOSE_RE = re.compile(
    rf"(?:\d|{_UNIT})\s*(?:bid|tid|qid|qds|tds|od|qd|qhs|prn|nocte|mane)\b", re.IGNORECASE
)


def contains_dose_instruction(text: str) -> bool:
    """True when `text` states an amount or schedule of a medicine (obfuscation folded first)."""
    return any(
        _DOSE_RE.search(folded) or _ABBREV_RE.search(folded) or _ABBREV_AFTER_DOSE_RE.search(folded)
        for folded in folded_variants(text)
    )


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
# After an explicit introduction a name counts in any case ("my name is john smith"): up to
# three words, stopping at words that start the rest of the sentence.
_NAME_STOP = (
    r"(?:and|but|or|so|i|im|i'm|with|from|have|has|had|who|my|is|was|am|are|the|a|an|to|for|of|"
    r"in|on|at|age|aged|years?|yo|here|there|because|also|just|please|thanks?|thank|and|y|et|"
    r"und|e|tengo|j'ai|ich|ho|tenho|what|how|can|could|do|does|did|will|would|should)"
)
_ANY_NAME = rf"[^\W\d_][\w'’-]*(?:\s+(?!{_NAME_STOP}\b)[^\W\d_][\w'’-]*){{0,2}}"
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
    (
        "NAME",
        re.compile(
            rf"(?i:\b(?:my\s+name\s+is|my\s+name's|name\s*:|patient\s*:|call\s+me|"
            rf"i\s+am\s+called|i'm\s+called|(?:his|her|their)\s+name\s+is|me\s+llamo|"
            rf"mi\s+nombre\s+es|je\s+m'appelle|je\s+m’appelle|ich\s+hei(?:ß|ss)e|"
            rf"mein\s+name\s+ist|mi\s+chiamo|meu\s+nome\s+[ée]|my\s+(?:son|daughter|wife|"
            rf"husband|mother|father|mum|mom|dad|partner|child)(?:'s|’s)\s+name\s+is)\s+)"
            rf"(?P<name>{_ANY_NAME})",
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
                if name.split()[0].capitalize() in _NOT_NAMES:
                    return m.group(0)
                counts[label] = counts.get(label, 0) + 1
                return m.group(0)[: m.start("name") - m.start(0)] + f"[{label}]"
            if label == "PHONE" and sum(ch.isdigit() for ch in m.group(0)) < 7:
                return m.group(0)  # short number groups are measurements, not phones
            counts[label] = counts.get(label, 0) + 1
            return f"[{label}]"

        text = pattern.sub(replace, text)
    return ScrubResult(text=text, counts=counts)
